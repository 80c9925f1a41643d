"""Read-model storage on PostgreSQL/TimescaleDB, and the event store as a projector source.

`PostgresReadModels` hands projectors asyncpg transactions. `EventStoreSource` reads the
log directly in position order, woken by the `tradecore_events` NOTIFY and polling as a
safety net; it also fills gaps and serves rebuilds (`read_envelopes`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domain.events import from_dict
from projections.base import Envelope, Tx

NOTIFY_CHANNEL = "tradecore_events"


class PostgresReadModels:
    """An asyncpg pool for the read-model database (may be the event store's database)."""

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresReadModels.open() was not called")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn


async def read_envelopes(pool: asyncpg.Pool, after: int, limit: int) -> list[Envelope]:
    rows = await pool.fetch(
        "SELECT notification_id, event_id, state FROM events WHERE notification_id > $1 "
        "ORDER BY notification_id LIMIT $2",
        after,
        limit,
    )
    return [Envelope(int(r[0]), str(r[1]), from_dict(json.loads(bytes(r[2])))) for r in rows]


class Wakeup:
    """LISTEN on the events channel: `wait` returns on a NOTIFY or after `timeout`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._event = asyncio.Event()

    async def open(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.add_listener(NOTIFY_CHANNEL, self._notified)

    def _notified(self, *_: Any) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class EventStoreSource:
    """Projector source reading the event store directly (used when Kafka is not configured)."""

    def __init__(
        self, dsn: str, *, batch_size: int = 1_000, poll: float = 1.0, follow: bool = True
    ) -> None:
        self.dsn = dsn
        self.batch_size = batch_size
        self.poll = poll
        self.follow = follow
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("EventStoreSource.open() was not called")
        return self._pool

    async def read_envelopes(self, after: int, limit: int) -> list[Envelope]:
        return await read_envelopes(self.pool, after, limit)

    async def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]:
        wakeup = Wakeup(self.dsn)
        await wakeup.open()
        try:
            while True:
                batch = await self.read_envelopes(after, self.batch_size)
                if batch:
                    after = batch[-1].position
                    yield batch
                    continue
                if not self.follow:
                    return
                await wakeup.wait(self.poll)
        finally:
            await wakeup.close()

    async def applied(self, batch: Sequence[Envelope]) -> None:
        return None


@dataclass(frozen=True)
class ProjectorStatus:
    name: str
    position: int
    head: int
    event_at: datetime | None
    updated_at: datetime | None

    @property
    def behind(self) -> int:
        return self.head - self.position


@dataclass(frozen=True)
class RelayStatus:
    name: str
    position: int
    head: int
    published_at: datetime | None
    lag_seconds: float | None


async def projection_status(conn: Any, names: Sequence[str]) -> list[ProjectorStatus]:
    head = int(await conn.fetchval("SELECT coalesce(max(notification_id), 0) FROM events"))
    rows = {
        r[0]: r
        for r in await conn.fetch(
            "SELECT name, position, event_at, updated_at FROM projection_positions"
        )
    }
    out = []
    for name in names:
        row = rows.get(name)
        out.append(
            ProjectorStatus(name, 0, head, None, None)
            if row is None
            else ProjectorStatus(name, int(row[1]), head, row[2], row[3])
        )
    return out


async def relay_status(conn: Any) -> list[RelayStatus]:
    head = int(await conn.fetchval("SELECT coalesce(max(notification_id), 0) FROM events"))
    rows = await conn.fetch("SELECT name, position, published_at, lag_us FROM relay_position")
    return [
        RelayStatus(r[0], int(r[1]), head, r[2], None if r[3] is None else r[3] / 1e6)
        for r in rows
    ]
