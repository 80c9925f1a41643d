"""Schema migrations (Alembic) for the event store and the read models: `tradecore db upgrade`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

HERE = Path(__file__).resolve().parent


def sqlalchemy_url(dsn: str) -> str:
    """Our DSNs are libpq style; SQLAlchemy is told to use psycopg 3."""
    scheme, _, rest = dsn.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else dsn


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision in `versions/` (what `upgrade(dsn, "head")` reaches)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current(dsn: str) -> str | None:
    engine = sa.create_engine(sqlalchemy_url(dsn))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(dsn: str, revision: str = "head", report: Callable[[str], None] = print) -> None:
    """Bring the schema to `revision`; running it again at that revision does nothing."""
    before = current(dsn)
    command.upgrade(alembic_config(dsn), revision)
    after = current(dsn)
    if before == after:
        report(f"database schema already at {after}")
    else:
        report(f"database schema upgraded from {before or 'empty'} to {after}")
