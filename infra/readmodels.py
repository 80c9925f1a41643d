"""Read-model storage on PostgreSQL/TimescaleDB, and the event store as a projector source.

`PostgresReadModels` hands projectors asyncpg transactions. `EventStoreSource` reads the
log directly in position order, woken by the `tradecore_events` NOTIFY and polling as a
safety net; it also fills gaps and serves rebuilds (`read_envelopes`). Retention of raw
trades (`drop_chunks` on TimescaleDB, a DELETE elsewhere) runs from `RetentionScheduler`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from domain.events import from_dict
from infra.sql_text import inline, literal
from projections.base import Envelope, Tx

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "tradecore_events"


class PostgresReadModels:
    """An asyncpg pool for the read-model database (may be the event store's database)."""

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        # Read-model commits need not wait for their WAL flush: a read model is rebuilt from
        # the log, and its rows and position commit atomically either way. After a server
        # crash the last few projector transactions may be gone, all of a piece, so each
        # projector resumes from its (older) stored position: the runner re-reads what it
        # needs (Kafka redelivery or the event store's backfill). Exactly once still holds.
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            # `DeferredWrites` writes parameters as literals: only `'` may be special in them.
            server_settings={"synchronous_commit": "off", "standard_conforming_strings": "on"},
            # Nothing here changes session state (no SET, LISTEN, advisory lock or cursor),
            # so a released connection needs no reset round trip; asyncpg still rolls back a
            # transaction left open.
            reset=_no_session_state,
        )

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

    async def execute(self, query: str, *args: Any) -> str:
        """One statement in its own transaction (autocommit)."""
        return str(await self.pool.execute(query, *args))

    @asynccontextmanager
    async def deferred(self) -> AsyncIterator[DeferredWrites]:
        async with self.pool.acquire() as conn:
            yield DeferredWrites(conn)


async def _no_session_state(conn: asyncpg.Connection) -> None:
    return None


# SQLSTATE raised by tradecore_advance_projection (migration 0008) when the position moved.
POSITION_MOVED = "TCP01"


class DeferredWrites:
    """A projector's batch as one round trip: reads run at once (autocommit), writes are
    held and sent with the position update as one simple-query script, which PostgreSQL runs
    as one implicit transaction. Rows and position still commit together or not at all.

    Reads see committed rows only, so a read after a held write is refused (it would not see
    the write); batches that need that use `PostgresReadModels.transaction`. The position
    update fails the whole script when the position is no longer the one the batch was
    built on (another process moved it), which `commit` reports as False."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._writes: list[str] = []

    async def execute(self, query: str, *args: Any) -> str:
        self._writes.append(inline(query, args))
        return "DEFERRED"

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None:
        self._writes.extend(inline(command, a) for a in args)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        self._no_writes_yet(query)
        return list(await self._conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self._no_writes_yet(query)
        return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self._no_writes_yet(query)
        return await self._conn.fetchval(query, *args)

    def _no_writes_yet(self, query: str) -> None:
        if self._writes:
            raise RuntimeError(
                "a read after a held write would not see it; use a transaction: "
                + " ".join(query.split())[:80]
            )

    async def commit(self, name: str, after: int, to: int, event_at: datetime) -> bool:
        """Run the held writes and move `name` from position `after` to `to`, atomically;
        False (and nothing written) if `name` is not at `after`."""
        advance = (
            f"SELECT tradecore_advance_projection({literal(name)}, {literal(after)}, "
            f"{literal(to)}, {literal(event_at)})"
        )
        script, self._writes = ";\n".join([*self._writes, advance]), []
        try:
            await self._conn.execute(script)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == POSITION_MOVED:
                return False
            # A write may fail because another process (a rebuild) changed the rows first,
            # before the position check is reached: then the position says so.
            stored = await self._conn.fetchval(
                "SELECT position FROM projection_positions WHERE name = $1", name
            )
            if stored != after:
                return False
            raise
        return True


# Commit time in µs since the epoch: `date_part` (double precision) costs a third of
# `extract` (numeric) on the server, and is exact here: a present-day time in µs is below
# 2^53, so the product rounds back to the exact count.
READ_ENVELOPES = (
    "SELECT notification_id, event_id::text, state, "
    "(date_part('epoch', recorded_at) * 1000000)::bigint FROM events "
    "WHERE notification_id > $1 ORDER BY notification_id LIMIT $2"
)


def loads_payload(payload: bytes) -> Any:
    """An event's stored JSON, parsed by orjson (about 4x faster than `json.loads` on these
    payloads: docs/benchmarks.md, read side); what orjson refuses (an integer beyond 64 bits,
    a lone surrogate) goes through the standard library, which parses it or names the fault."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


# A rebuild needs neither the event id nor the commit time (no projector reads them, and
# there is no lag to measure): reading only position and payload costs a third less.
READ_BARE = (
    "SELECT notification_id, state FROM events "
    "WHERE notification_id > $1 ORDER BY notification_id LIMIT $2"
)


async def read_envelopes(
    pool: asyncpg.Pool, after: int, limit: int, *, bare: bool = False
) -> list[Envelope]:
    """Events after `after`, decoded once (JSON, then the domain's `from_dict`); `bare`:
    without event id and commit time (see `READ_BARE`)."""
    if bare:
        rows = await pool.fetch(READ_BARE, after, limit)
        return [Envelope(r[0], None, from_dict(loads_payload(r[1]))) for r in rows]
    rows = await pool.fetch(READ_ENVELOPES, after, limit)
    return [Envelope(r[0], r[1], from_dict(loads_payload(r[2])), r[3]) for r in rows]


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
        self,
        dsn: str,
        *,
        batch_size: int = 5_000,
        poll: float = 1.0,
        follow: bool = True,
        bare: bool = False,
    ) -> None:
        self.dsn = dsn
        self.batch_size = batch_size
        self.poll = poll
        self.follow = follow
        self.bare = bare  # envelopes without event id and commit time: for rebuilds
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
        return await read_envelopes(self.pool, after, limit, bare=self.bare)

    async def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]:
        wakeup = Wakeup(self.dsn)
        await wakeup.open()
        ahead: asyncio.Future[list[Envelope]] | None = None
        try:
            while True:
                batch = await (ahead or self.read_envelopes(after, self.batch_size))
                ahead = None
                if batch:
                    after = batch[-1].position
                    if len(batch) == self.batch_size:
                        # More is waiting: read (and decode) the next batch while this one
                        # is being written.
                        ahead = asyncio.ensure_future(self.read_envelopes(after, self.batch_size))
                    yield batch
                    continue
                if not self.follow:
                    return
                await wakeup.wait(self.poll)
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
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
        RelayStatus(r[0], int(r[1]), head, r[2], None if r[3] is None else r[3] / 1e6) for r in rows
    ]


async def oldest_unapplied_at(conn: Any, positions: Sequence[int]) -> dict[int, datetime]:
    """Commit time of the first event after each position (absent when there is none)."""
    rows = await conn.fetch(
        "SELECT notification_id - 1, recorded_at FROM events "
        "WHERE notification_id = ANY($1::bigint[])",
        [p + 1 for p in positions],
    )
    return {int(r[0]): r[1] for r in rows}


# -- retention ----------------------------------------------------------------------------------

RETENTION_TABLE = "trades"  # raw executions; candles and statistics are kept


@dataclass(frozen=True)
class RetentionRun:
    """One retention pass: what was removed from `table` before `cutoff`, and how."""

    table: str
    cutoff: datetime
    method: str  # "drop_chunks" (TimescaleDB) or "delete" (plain PostgreSQL)
    removed: int  # chunks dropped, or rows deleted


async def is_hypertable(conn: Any, table: str) -> bool:
    if await conn.fetchval("SELECT to_regclass('timescaledb_information.hypertables')") is None:
        return False
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = $1)",
            table,
        )
    )


async def drop_old_trades(conn: Any, cutoff: datetime) -> RetentionRun:
    """Remove raw trades executed before `cutoff`.

    On TimescaleDB whole chunks go (`drop_chunks`: only chunks entirely before the cutoff,
    so up to one chunk interval of older trades can remain until the next pass); without
    it, a DELETE by time, with a warning, because it rewrites and vacuums row by row.
    """
    if await is_hypertable(conn, RETENTION_TABLE):
        dropped = await conn.fetch(
            f"SELECT drop_chunks('{RETENTION_TABLE}', older_than => $1::timestamptz)", cutoff
        )
        return RetentionRun(RETENTION_TABLE, cutoff, "drop_chunks", len(dropped))
    log.warning(
        "%s is not a TimescaleDB hypertable: retention deletes rows before %s one by one "
        "(DELETE), which is slow and leaves dead rows for VACUUM; install TimescaleDB to "
        "drop whole chunks instead",
        RETENTION_TABLE,
        cutoff.isoformat(),
    )
    status = await conn.execute(f"DELETE FROM {RETENTION_TABLE} WHERE executed_at < $1", cutoff)
    return RetentionRun(RETENTION_TABLE, cutoff, "delete", int(status.split()[-1]))


def parse_age(text: str) -> timedelta | None:
    """`30d`, `12h`, `90m`, `45s` (or a bare number of days); `off`, `none` or `0`: None."""
    value = text.strip().lower()
    if value in ("", "off", "none", "0", "never"):
        return None
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    unit = units.get(value[-1])
    number = value[:-1] if unit else value
    try:
        age = timedelta(**{unit or "days": float(number)})
    except ValueError:
        raise ValueError(f"not an age: {text!r} (examples: 30d, 12h, 90m, off)") from None
    if age <= timedelta(0):
        raise ValueError(f"a retention age must be positive: {text!r}")
    return age


class RetentionScheduler:
    """Our own scheduler for retention (the Apache edition of TimescaleDB has no policies):
    every `every` seconds, drop the raw trades older than `keep` (by the wall clock)."""

    def __init__(
        self,
        dsn: str,
        keep: timedelta,
        *,
        every: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.dsn = dsn
        self.keep = keep
        self.every = every
        self.clock = clock
        self.runs: list[RetentionRun] = []

    async def run_once(self) -> RetentionRun:
        conn = await asyncpg.connect(self.dsn)
        try:
            done = await drop_old_trades(conn, self.clock() - self.keep)
        finally:
            await conn.close()
        self.runs = [*self.runs[-99:], done]
        log.info("retention: %s removed %d from %s before %s", done.method, done.removed,
                 done.table, done.cutoff.isoformat())  # fmt: skip
        return done

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """A pass now, then one every `every` seconds until `stop` (errors stop it: say so)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.run_once()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
