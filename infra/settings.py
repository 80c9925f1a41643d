"""Every setting Tradecore reads, in one pydantic-settings class (environment and `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Known-insecure values that only a development or test machine may run with.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
DEV_DB_PASSWORD = "tradecore-dev"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Tradecore's settings. Each field is read from `TRADECORE_<FIELD>` or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="TRADECORE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = "development"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    # Where the local stack keeps binaries, data and logs (git-ignored).
    stack_dir: Path = PROJECT_ROOT / ".stack"

    # PostgreSQL (event store and, by default, the read models). Setting `database_url`
    # points Tradecore at an external server and the local stack leaves PostgreSQL alone.
    pg_host: str = "127.0.0.1"
    pg_port: int = 54329
    pg_user: str = "tradecore"
    pg_password: SecretStr = SecretStr(DEV_DB_PASSWORD)
    pg_database: str = "tradecore"
    database_url: str | None = None

    # Redis (live fan-out, rate limits, token revocation).
    redis_host: str = "127.0.0.1"
    redis_port: int = 63799
    redis_url: str | None = None

    # Kafka (event replication). `kafka_bootstrap` set means an external cluster.
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 59092
    kafka_controller_port: int = 59093
    kafka_bootstrap: str | None = None
    kafka_heap: str = "512m"

    # The HTTP gateway.
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    # The core, and the demo market that `tradecore up` drives it with.
    snapshot_every: int = 500_000
    # the live publisher in its own process (off the order-entry loop) or in the gateway's
    live_publisher: Literal["process", "inline"] = "process"
    demo_market: bool = True
    demo_rate: float = 100.0
    demo_seed: int = 7
    demo_symbols: str = "BTC-USD,ETH-USD,SOL-USD"
    # The Kafka relay and the projectors, run by `tradecore up` beside the gateway.
    read_side: bool = True
    # Raw trades older than this are dropped by chunk ("30d", "12h"; "off" keeps them).
    trades_retention: str = "30d"

    @model_validator(mode="after")
    def _refuse_default_secrets_outside_development(self) -> Settings:
        if self.env in ("development", "test"):
            return self
        insecure = []
        if self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            insecure.append("TRADECORE_SECRET_KEY")
        if self.database_url is None and self.pg_password.get_secret_value() == DEV_DB_PASSWORD:
            insecure.append("TRADECORE_PG_PASSWORD")
        if insecure:
            raise ValueError(
                f"TRADECORE_ENV={self.env} refuses the development default for "
                f"{', '.join(insecure)}: set a secret of your own in the environment or .env"
            )
        return self

    @property
    def postgres_managed(self) -> bool:
        """True when the local stack runs PostgreSQL (no external `database_url`)."""
        return self.database_url is None

    @property
    def redis_managed(self) -> bool:
        return self.redis_url is None

    @property
    def kafka_managed(self) -> bool:
        return self.kafka_bootstrap is None

    @cached_property
    def dsn(self) -> str:
        """libpq/asyncpg connection string for the Tradecore database."""
        if self.database_url is not None:
            return self.database_url.replace("postgresql+psycopg://", "postgresql://")
        password = self.pg_password.get_secret_value()
        return (
            f"postgresql://{self.pg_user}:{password}@{self.pg_host}:{self.pg_port}/"
            f"{self.pg_database}"
        )

    def dsn_for(self, database: str) -> str:
        """The same server, another database (tests create their own)."""
        base, _, _ = self.dsn.rpartition("/")
        return f"{base}/{database}"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"


def load_settings() -> Settings:
    return Settings()
