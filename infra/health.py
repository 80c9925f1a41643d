"""Health checks of PostgreSQL (and TimescaleDB), Redis, Kafka and the schema, for GET /health."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from gateway.health import ComponentHealth
from infra.settings import Settings
from infra.stack.kafka import KAFKA_VERSION

TIMEOUT = 3.0


class ServiceHealth:
    """Asks each real service for its version; results are cached for a second."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cached: tuple[float, list[ComponentHealth]] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> list[ComponentHealth]:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < 1.0:
                return self._cached[1]
            results = list(await asyncio.gather(self._postgres(), self._redis(), self._kafka()))
            flat = [item for group in results for item in group]
            self._cached = (time.monotonic(), flat)
            return flat

    async def _postgres(self) -> list[ComponentHealth]:
        address = f"{self.settings.pg_host}:{self.settings.pg_port}"
        try:
            conn = await asyncpg.connect(self.settings.dsn, timeout=TIMEOUT)
            try:
                version = await conn.fetchval("SHOW server_version")
                tsdb = await conn.fetchval(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                )
                revision = await conn.fetchval(
                    "SELECT version_num FROM alembic_version"
                    if await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
                    else "SELECT NULL"
                )
            finally:
                await conn.close()
        except Exception as exc:
            return [
                ComponentHealth(
                    name="postgres", kind="service", state="down", address=address, detail=str(exc)
                )
            ]
        return [
            ComponentHealth(
                name="postgres",
                kind="service",
                state="up",
                address=address,
                version=f"PostgreSQL {version}",
            ),
            ComponentHealth(
                name="timescaledb",
                kind="service",
                state="up" if tsdb else "degraded",
                version=f"TimescaleDB {tsdb}" if tsdb else "",
                detail="" if tsdb else "extension missing: read models run on plain tables",
            ),
            ComponentHealth(
                name="schema",
                kind="component",
                state="up" if revision else "down",
                version=revision or "",
                detail="" if revision else "no migrations applied: run `tradecore db upgrade`",
            ),
        ]

    async def _redis(self) -> list[ComponentHealth]:
        client = aioredis.Redis.from_url(self.settings.redis_dsn, socket_timeout=TIMEOUT)
        address = self.settings.redis_dsn.rsplit("@", 1)[-1].removeprefix("redis://")
        try:
            info = await client.info("server")
        except Exception as exc:
            return [
                ComponentHealth(
                    name="redis", kind="service", state="down", address=address, detail=str(exc)
                )
            ]
        finally:
            await client.aclose()
        return [
            ComponentHealth(
                name="redis",
                kind="service",
                state="up",
                address=address,
                version=f"Redis {info['redis_version']}",
            )
        ]

    async def _kafka(self) -> list[ComponentHealth]:
        servers = self.settings.kafka_servers
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=servers, request_timeout_ms=int(TIMEOUT * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), TIMEOUT)
            cluster = await asyncio.wait_for(admin.describe_cluster(), TIMEOUT)
        except Exception as exc:
            return [
                ComponentHealth(
                    name="kafka",
                    kind="service",
                    state="down",
                    address=servers,
                    detail=str(exc) or type(exc).__name__,
                )
            ]
        finally:
            await admin.close()
        brokers = len(cluster.get("brokers", [])) if isinstance(cluster, dict) else 0
        return [
            ComponentHealth(
                name="kafka",
                kind="service",
                state="up",
                address=servers,
                version=f"Apache Kafka {KAFKA_VERSION}"
                if self.settings.kafka_managed
                else "Apache Kafka",
                detail=f"{brokers} broker(s), KRaft controller "
                f"{cluster.get('controller_id') if isinstance(cluster, dict) else '?'}",
            )
        ]
