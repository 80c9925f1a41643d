"""Integration fixtures: the real local stack (started if needed) and a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from infra.eventstore import PostgresEventStore
from infra.migrations import upgrade
from infra.settings import Settings
from infra.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(env="test")


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Stack:
    """The real services; `up` is idempotent, so an already running stack is reused."""
    running = Stack(settings, report=lambda _: None)
    running.up()
    return running


@pytest.fixture
def database(settings: Settings, stack: Stack) -> Iterator[str]:
    """A new, empty database on the real server; dropped afterwards. Yields its DSN."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = settings.dsn_for("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield settings.dsn_for(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_database(database: str) -> str:
    upgrade(database, "head", report=lambda _: None)
    return database


@pytest.fixture
async def store(migrated_database: str) -> AsyncIterator[PostgresEventStore]:
    """The event store on the test's migrated database, open for the test."""
    es = PostgresEventStore(migrated_database)
    await es.open()
    yield es
    await es.close()
