"""The relay: publishes the event log to Kafka, in position order, without losing an event.

It tails `events` (woken by the `tradecore_events` NOTIFY, polling as a safety net), sends
each batch with an idempotent producer (`acks=all`) and records the last published position
in `relay_position` only after the broker acknowledged the whole batch. After a broker
outage, or a kill of the relay itself, it resends from that position: a consumer may see an
event twice and drops the second copy by its position header. See docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from infra.readmodels import Wakeup

log = logging.getLogger(__name__)

TOPIC = "tradecore.events"
LOG_NAME = "main"  # the message key: one log (shard) = one key = one ordered partition
BATCH_BYTES = 1024 * 1024
_PARTITIONER = DefaultPartitioner()


@dataclass
class RelayMetrics:
    """In-process gauges: what was published and how far behind the commits the broker is."""

    position: int = 0
    published: int = 0
    batches: int = 0
    reconnects: int = 0
    lag_seconds: float | None = None  # commit (recorded_at) -> broker ack, last event of a batch
    lag_history: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outgoing:
    position: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    recorded_at: datetime


HEADER_NAMES = ("position", "event_id", "event_type", "schema_version", "stream_id",
                "stream_version", "occurred_at_ns", "command_id", "correlation_id", "hash",
                "recorded_at_us")  # fmt: skip  # the order `headers_of` writes them in


# The header values as the server writes them (UTF-8 text, in `HEADER_NAMES` order: position,
# event id, type, schema version, stream id and version, occurrence time in ns, command and
# correlation ids, the hash chain's hash in hex, commit time in µs), so the relay does no
# per-header conversion in Python.
READ = (
    "SELECT notification_id, state, recorded_at, "
    + ", ".join(
        f"convert_to({expr}, 'UTF8')"
        for expr in (
            "notification_id::text", "event_id::text", "event_type", "schema_version::text",
            "originator_id::text", "originator_version::text", "occurred_at_ns::text",
            "command_id", "correlation_id", "encode(hash, 'hex')",
            "((date_part('epoch', recorded_at) * 1000000)::bigint)::text",  # see readmodels
        )
    )
    + " FROM events WHERE notification_id > $1 ORDER BY notification_id LIMIT $2"
)  # fmt: skip


async def ensure_topic(servers: str, topic: str, *, partitions: int = 1) -> None:
    """Create the topic if missing (external clusters often disable auto-creation)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
            )
    finally:
        await admin.close()


class Relay:
    def __init__(
        self,
        dsn: str,
        kafka_servers: str,
        *,
        topic: str = TOPIC,
        name: str = LOG_NAME,
        batch_size: int = 1_000,
        poll: float = 1.0,
        send_timeout: float = 15.0,
        retry_backoff: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.kafka_servers = kafka_servers
        self.topic = topic
        self.name = name
        self.batch_size = batch_size
        self.poll = poll
        self.send_timeout = send_timeout
        self.retry_backoff = retry_backoff
        self.metrics = RelayMetrics()
        self._conn: asyncpg.Connection | None = None
        self._producer: AIOKafkaProducer | None = None
        self._published: int | None = None

    # -- the log side ------------------------------------------------------------------------

    async def published_position(self) -> int:
        assert self._conn is not None
        await self._conn.execute(
            "INSERT INTO relay_position (name, position) VALUES ($1, 0) "
            "ON CONFLICT (name) DO NOTHING",
            self.name,
        )
        return int(
            await self._conn.fetchval(
                "SELECT position FROM relay_position WHERE name = $1", self.name
            )
        )

    async def _read(self, after: int) -> list[Outgoing]:
        assert self._conn is not None
        rows = await self._conn.fetch(READ, after, self.batch_size)
        key, names = self.name.encode(), HEADER_NAMES
        return [Outgoing(r[0], key, r[1], list(zip(names, r[3:], strict=True)), r[2]) for r in rows]

    async def _record(self, position: int, lag: float) -> None:
        assert self._conn is not None
        await self._conn.execute(
            "UPDATE relay_position SET position = $2, published_at = now(), lag_us = $3 "
            "WHERE name = $1 AND position < $2",
            self.name,
            position,
            int(lag * 1e6),
        )

    # -- the broker side ---------------------------------------------------------------------

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka_servers,
            enable_idempotence=True,
            acks="all",
            # The relay hands the producer whole batches (`_send`), so lingering would only
            # add latency; a batch of up to 1 MiB (the broker's default message.max.bytes)
            # goes in one record batch instead of the default 16 KiB pieces.
            linger_ms=0,
            max_batch_size=BATCH_BYTES,
            request_timeout_ms=int(self.send_timeout * 1000),
            retry_backoff_ms=200,
        )
        await producer.start()
        return producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # the broker is gone; the client is being thrown away anyway
                log.debug("closing the Kafka producer failed", exc_info=True)

    async def _send(self, batch: Sequence[Outgoing]) -> None:
        producer: Any = self._producer
        if producer is None:
            producer = await asyncio.wait_for(self._start_producer(), self.send_timeout)
            self._producer = producer
        # Whole record batches, which skips `send`'s per-message work (about half of the
        # relay's CPU), to the partition `send` would choose for the log's key (murmur2, as in
        # every Kafka client). Same ordering, idempotence and acks=all.
        partitions = sorted(await producer.partitions_for(self.topic))
        partition = _PARTITIONER(self.name.encode(), partitions, partitions)
        futures = []
        builder = producer.create_batch()
        for m in batch:
            if builder.append(key=m.key, value=m.value, timestamp=None, headers=m.headers) is None:
                futures.append(await producer.send_batch(builder, self.topic, partition=partition))
                builder = producer.create_batch()
                if (
                    builder.append(key=m.key, value=m.value, timestamp=None, headers=m.headers)
                    is None
                ):
                    raise ValueError(f"event {m.position} does not fit in a Kafka record batch")
        if builder.record_count():
            futures.append(await producer.send_batch(builder, self.topic, partition=partition))
        await asyncio.wait_for(asyncio.gather(*futures), self.send_timeout)

    # -- the loop ------------------------------------------------------------------------------

    async def publish_available(self) -> int:
        """Publish everything committed after the recorded position; returns how many."""
        # The position this relay recorded last (read once per run: it is the row's writer).
        position = self._published
        if position is None:
            position = self._published = await self.published_position()
        sent = 0
        while batch := await self._read(position):
            await self._send(batch)
            last = batch[-1]
            lag = max(0.0, (datetime.now(UTC) - last.recorded_at).total_seconds())
            await self._record(last.position, lag)
            position = self._published = last.position
            sent += len(batch)
            m = self.metrics
            m.position, m.published, m.batches, m.lag_seconds = (
                position, m.published + len(batch), m.batches + 1, lag,
            )  # fmt: skip
            m.lag_history = [*m.lag_history[-999:], lag]
        return sent

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Publish until `stop` is set (or the task is cancelled); broker errors are retried."""
        stop = stop or asyncio.Event()
        # The recorded position need not wait for its WAL flush: if a server crash loses the
        # last update, the relay resends from the older position and consumers drop the
        # duplicates by position (the events themselves are committed by the core as usual).
        self._conn = await asyncpg.connect(self.dsn, server_settings={"synchronous_commit": "off"})
        self._published = None
        wakeup = Wakeup(self.dsn)
        await wakeup.open()
        try:
            while not stop.is_set():
                try:
                    await self.publish_available()
                except Exception as exc:
                    if not is_broker_error(exc):
                        raise  # a database problem: stop and say so
                    await self._broker_failed(exc)
                    continue
                await wakeup.wait(self.poll)
        finally:
            await self._drop_producer()
            await wakeup.close()
            await self._conn.close()
            self._conn = None

    async def _broker_failed(self, exc: BaseException) -> None:
        """Nothing after the recorded position counts as published: drop the client, retry."""
        self.metrics.reconnects += 1
        log.warning("Kafka unavailable (%s); republishing from the recorded position", exc)
        await self._drop_producer()
        await asyncio.sleep(self.retry_backoff)


def _add(builder: Any, m: Outgoing) -> bool:
    """Append one message to a record batch; False when the batch is full."""
    return builder.append(key=m.key, value=m.value, timestamp=None, headers=m.headers) is not None


def is_broker_error(exc: BaseException) -> bool:
    """Errors that mean "the broker did not acknowledge": retry from the recorded position."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return False
    return isinstance(exc, KafkaError | TimeoutError | ConnectionError)
