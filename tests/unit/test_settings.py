"""Settings: one class, development defaults refused outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import Settings


def test_development_runs_with_the_default_secrets() -> None:
    settings = Settings(env="development")
    assert settings.dsn == "postgresql://tradecore:tradecore-dev@127.0.0.1:54329/tradecore"


def test_production_refuses_the_default_secret_key_and_database_password() -> None:
    with pytest.raises(ValidationError, match="TRADECORE_SECRET_KEY, TRADECORE_PG_PASSWORD"):
        Settings(env="production")


def test_production_starts_with_secrets_of_its_own() -> None:
    settings = Settings(env="production", secret_key="s3cret-" * 6, pg_password="another-one")
    assert settings.dsn.startswith("postgresql://tradecore:another-one@")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADECORE_PG_PORT", "6000")
    monkeypatch.setenv("TRADECORE_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    settings = Settings()
    assert settings.pg_port == 6000
    assert settings.kafka_servers == "broker-a:9092,broker-b:9092"
    assert not settings.kafka_managed and settings.postgres_managed


def test_an_external_database_url_replaces_the_local_server() -> None:
    settings = Settings(database_url="postgresql+psycopg://u:p@db.internal:5432/trading")
    assert not settings.postgres_managed
    assert settings.dsn == "postgresql://u:p@db.internal:5432/trading"
    assert settings.dsn_for("other") == "postgresql://u:p@db.internal:5432/other"
