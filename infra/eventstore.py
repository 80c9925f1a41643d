"""The PostgreSQL event store: one gap-free, hash-chained log with a fenced single writer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from commands.ports import (
    GENESIS_HASH,
    NewEvent,
    RecordedEvent,
    Snapshot,
    WriterFenced,
)

LOG_NAME = "main"
# One advisory-lock key per log; the writer holds it on a dedicated session for its lifetime.
ADVISORY_KEY = 0x7472_6164_6563_6F72 & 0x7FFF_FFFF_FFFF_FFFF  # "tradecor"

COLUMNS = (
    "originator_id", "originator_version", "topic", "state", "notification_id", "event_id",
    "event_type", "schema_version", "occurred_at", "occurred_at_ns", "command_id", "correlation_id",
    "writer_epoch", "prev_hash", "hash",
)  # fmt: skip

# What the fence trigger raises when this session's epoch is no longer the log's.
FENCE_SQLSTATE = "TCF01"
_DISPLACED = "this core was displaced by a newer writer; it stops appending"

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z, PostgreSQL's timestamp origin


class LogGap(RuntimeError):
    """A position is missing from the log (it was tampered with): replay refuses to skip it."""


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


class PostgresEventStore:
    """asyncpg-backed EventStore. `append` is only allowed after `acquire_writer`."""

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._lock_conn: asyncpg.Connection | None = None
        self._writer: asyncpg.Connection | None = None
        self._epoch: int | None = None
        self._head: tuple[int, bytes] | None = None
        self._stream_text: dict[UUID, bytes] = {}
        self._kinds: dict[tuple[str, int], tuple[str, bytes]] = {}  # topic, hashed type text
        self._fenced_copy = False  # the events table has the fence trigger (migration 0007)

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        for conn in (self._writer, self._lock_conn):
            if conn is not None and not conn.is_closed():
                await conn.close()
        self._writer = self._lock_conn = None
        self._epoch = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresEventStore.open() was not called")
        return self._pool

    @property
    def writer_pid(self) -> int | None:
        """The writer session's server process id (benchmarks read its CPU time)."""
        return None if self._writer is None else self._writer.get_server_pid()

    # -- the single writer ---------------------------------------------------------------------

    async def acquire_writer(self, holder: str | None = None, *, wait: bool = False) -> int:
        """Take the log's advisory lock and bump the writer epoch; refuse if another core has it.

        With `wait=True` this core waits as a hot standby until the lock is free.
        """
        holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        conn = await asyncpg.connect(self.dsn)
        try:
            if wait:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_KEY):
                    await asyncio.sleep(0.2)
            elif not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_KEY):
                current = await conn.fetchrow(
                    "SELECT holder, epoch, acquired_at FROM event_store_writer WHERE log_name=$1",
                    LOG_NAME,
                )
                who = (
                    f"{current['holder']} (epoch {current['epoch']}, since "
                    f"{current['acquired_at']:%Y-%m-%d %H:%M:%S} UTC)"
                    if current
                    else "another process"
                )
                raise WriterFenced(
                    f"the event log is already written by {who}; only one core may write it. "
                    "Stop that core, or start this one as a standby."
                )
            epoch = await conn.fetchval(
                """
                INSERT INTO event_store_writer (log_name, epoch, holder) VALUES ($1, 1, $2)
                ON CONFLICT (log_name) DO UPDATE
                    SET epoch = event_store_writer.epoch + 1, holder = $2, acquired_at = now()
                RETURNING epoch
                """,
                LOG_NAME,
                holder,
            )
        except BaseException:
            await conn.close()
            raise
        self._lock_conn = conn
        self._writer = await asyncpg.connect(self.dsn)
        # This session only appends: `occurred_at` goes out as PostgreSQL's own binary form
        # (microseconds since 2000, an int8 on the wire), with no Python call per row.
        await self._writer.set_builtin_type_codec(
            "timestamptz", schema="pg_catalog", codec_name="int8"
        )
        self._epoch = int(epoch)
        # With the fence trigger (migration 0007) one auto-committed COPY is a whole append:
        # the session claims its epoch once and the trigger checks it inside each COPY.
        self._fenced_copy = bool(
            await self._writer.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger "
                "WHERE tgname = 'events_writer_fence' AND tgrelid = 'events'::regclass)"
            )
        )
        if self._fenced_copy:
            await self._writer.execute(
                f"SET tradecore.writer_log = '{LOG_NAME}'; "
                f"SET tradecore.writer_epoch = '{self._epoch}'"
            )
        self._head = await self.head()
        return self._epoch

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        """Commit `events` in one transaction, positions after the head; all or nothing."""
        if self._writer is None or self._epoch is None or self._head is None:
            raise WriterFenced("append without the writer lock: call acquire_writer() first")
        if not events:
            return []
        position, prev = self._head
        epoch = self._epoch
        streams = self._stream_text
        if len(streams) > 100_000:
            streams.clear()
        kinds = self._kinds
        sha256 = hashlib.sha256
        make = tuple.__new__
        recorded: list[RecordedEvent] = []
        rows: list[tuple[Any, ...]] = []
        for event in events:
            position += 1
            (
                event_id, stream_id, version, event_type, schema, payload, ns, command_id,
                correlation_id,
            ) = event  # fmt: skip
            stream = streams.get(stream_id)
            if stream is None:
                stream = streams[stream_id] = str(stream_id).encode()
            kind = kinds.get((event_type, schema))
            if kind is None:
                kind = kinds[event_type, schema] = (
                    event.topic,
                    b"%b\x1f%d\x1f" % (event_type.encode(), schema),
                )
            # = chain_hash(prev, position, event), with the stream and type texts cached
            digest = sha256(
                b"%b%d\x1f%b\x1f%d\x1f%b%b" % (prev, position, stream, version, kind[1], payload)
            ).digest()
            recorded.append(make(RecordedEvent, (event, position, prev, digest, epoch)))
            rows.append(
                (
                    stream_id, version, kind[0], payload, position, event_id, event_type, schema,
                    ns // 1000 - _PG_EPOCH_US, ns, command_id, correlation_id, epoch, prev, digest,
                )
            )  # fmt: skip
            prev = digest
        if self._fenced_copy:
            # One round trip: the COPY is its own transaction, and the fence trigger takes the
            # writer row's lock before the first row and refuses a displaced writer's epoch.
            try:
                await self._writer.copy_records_to_table("events", records=rows, columns=COLUMNS)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == FENCE_SQLSTATE:
                    raise WriterFenced(_DISPLACED) from exc
                raise
        else:
            async with self._writer.transaction():
                # The epoch check takes the writer row's lock: a displaced writer cannot commit.
                still_ours = await self._writer.fetchval(
                    "UPDATE event_store_writer SET epoch = epoch "
                    "WHERE log_name = $1 AND epoch = $2 RETURNING epoch",
                    LOG_NAME,
                    self._epoch,
                )
                if still_ours is None:
                    raise WriterFenced(_DISPLACED)
                await self._writer.copy_records_to_table("events", records=rows, columns=COLUMNS)
        self._head = (position, prev)
        return recorded

    # -- reading ---------------------------------------------------------------------------------

    async def head(self) -> tuple[int, bytes]:
        row = await self.pool.fetchrow(
            "SELECT notification_id, hash FROM events ORDER BY notification_id DESC LIMIT 1"
        )
        return (0, GENESIS_HASH) if row is None else (int(row[0]), bytes(row[1]))

    async def read(self, after: int = 0, limit: int = 10_000) -> list[RecordedEvent]:
        rows = await self.pool.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM events WHERE notification_id > $1 "
            "ORDER BY notification_id LIMIT $2",
            after,
            limit,
        )
        return [record_from_row(row) for row in rows]

    async def read_payloads(
        self, after: int = 0, upto: int | None = None, page: int = 20_000
    ) -> AsyncIterator[list[asyncpg.Record]]:
        """Replay's read: pages of (position, stream version, payload) after `after`.

        Positions are gap-free, so each page is a position range known in advance: the next
        page is already being fetched (on another pooled connection) while the caller decodes
        this one. A missing position raises LogGap instead of being skipped.
        """
        sql = (
            "SELECT notification_id, originator_version, state FROM events "
            "WHERE notification_id > $1 AND notification_id <= $2 ORDER BY notification_id"
        )

        def upper(low: int) -> int:
            return low + page if upto is None else min(low + page, upto)

        if upto is not None and after >= upto:
            return
        pending = asyncio.ensure_future(self.pool.fetch(sql, after, upper(after)))
        try:
            while True:
                low, high = after, upper(after)
                rows = await pending
                if not rows:
                    return
                last = int(rows[-1][0])
                if rows[0][0] != low + 1 or last - low != len(rows):
                    raise LogGap(f"the log has a gap between positions {low} and {last}")
                more = last == high and (upto is None or last < upto)
                if more:
                    pending = asyncio.ensure_future(self.pool.fetch(sql, last, upper(last)))
                    await asyncio.sleep(0)  # send the next query before decoding this page
                yield rows
                if not more:
                    return
                after = last
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def read_payload_pages(
        self, after: int = 0, upto: int | None = None, page: int = 20_000
    ) -> AsyncIterator[tuple[int, list[int], list[bytes]]]:
        """Replay's fast read: each page as one row, (last position, stream versions,
        payloads), aggregated by the server, so no per-row record is decoded. Payloads are
        canonical JSON, which never holds a raw newline byte: the server joins them with one.
        The next page is fetched while the caller applies this one; a gap raises LogGap."""
        sql = (
            "SELECT count(*), min(notification_id), max(notification_id), "
            "array_agg(originator_version ORDER BY notification_id), "
            "string_agg(state, '\\x0a'::bytea ORDER BY notification_id) "
            "FROM events WHERE notification_id > $1 AND notification_id <= $2"
        )

        def upper(low: int) -> int:
            return low + page if upto is None else min(low + page, upto)

        if upto is not None and after >= upto:
            return
        pending = asyncio.ensure_future(self.pool.fetchrow(sql, after, upper(after)))
        try:
            while True:
                high = upper(after)
                count, first, last, versions, blob = await pending
                if not count:
                    return
                if first != after + 1 or last - after != count:
                    raise LogGap(f"the log has a gap between positions {after} and {last}")
                more = last == high and (upto is None or last < upto)
                if more:
                    pending = asyncio.ensure_future(self.pool.fetchrow(sql, last, upper(last)))
                    await asyncio.sleep(0)  # send the next query before applying this page
                payloads = bytes(blob).split(b"\n")
                if len(payloads) != count:
                    raise ValueError(f"a payload between {after} and {last} holds a newline")
                yield last, versions, payloads
                if not more:
                    return
                after = last
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    # -- snapshots -------------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 3) -> None:
        """Store the state as zlib-compressed JSON (compressed off the event loop's thread)
        and keep only the latest ``keep`` snapshots: older ones only cost space."""
        if snapshot.text is not None:
            blob = await asyncio.to_thread(compress_text, snapshot.text)
        else:
            blob = await asyncio.to_thread(compress_state, snapshot.state)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO core_snapshots (position, state_hash, state_zlib) "
                "VALUES ($1, $2, $3) ON CONFLICT (position) DO NOTHING",
                snapshot.position,
                snapshot.state_hash,
                blob,
            )
            await conn.execute(
                "DELETE FROM core_snapshots WHERE position < ("
                "SELECT min(position) FROM (SELECT position FROM core_snapshots "
                "ORDER BY position DESC LIMIT $1) AS latest)",
                keep,
            )

    async def latest_snapshot(self) -> Snapshot | None:
        row = await self.pool.fetchrow(
            "SELECT position, state_hash, state, state_zlib FROM core_snapshots "
            "ORDER BY position DESC LIMIT 1"
        )
        if row is None:
            return None
        if row["state_zlib"] is not None:
            # Kept as text: the core's kernel reads its part without a Python dict in between.
            text = await asyncio.to_thread(decompress_text, bytes(row["state_zlib"]))
            return Snapshot(int(row["position"]), str(row["state_hash"]), {}, text)
        state = json.loads(row["state"])
        return Snapshot(int(row["position"]), str(row["state_hash"]), state)


def compress_state(state: dict[str, Any]) -> bytes:
    return compress_text(json.dumps(state, separators=(",", ":")))


def compress_text(text: str) -> bytes:
    return zlib.compress(text.encode(), 1)


def decompress_text(blob: bytes) -> str:
    return zlib.decompress(blob).decode()


def record_from_row(row: asyncpg.Record) -> RecordedEvent:
    event = NewEvent(
        event_id=UUID(str(row["event_id"])),
        stream_id=UUID(str(row["originator_id"])),
        stream_version=int(row["originator_version"]),
        event_type=row["event_type"],
        schema_version=int(row["schema_version"]),
        payload=bytes(row["state"]),
        occurred_at_ns=int(row["occurred_at_ns"]),
        command_id=row["command_id"],
        correlation_id=row["correlation_id"],
    )
    return RecordedEvent(
        event=event,
        position=int(row["notification_id"]),
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
        writer_epoch=int(row["writer_epoch"]),
    )
