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

from infra.readmodels import Wakeup

log = logging.getLogger(__name__)

TOPIC = "tradecore.events"
LOG_NAME = "main"  # the message key: one log (shard) = one key = one ordered partition


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


def headers_of(row: Any) -> list[tuple[str, bytes]]:
    return [
        ("position", str(row["notification_id"]).encode()),
        ("event_id", str(row["event_id"]).encode()),
        ("event_type", row["event_type"].encode()),
        ("schema_version", str(row["schema_version"]).encode()),
        ("stream_id", str(row["originator_id"]).encode()),
        ("stream_version", str(row["originator_version"]).encode()),
        ("occurred_at_ns", str(row["occurred_at_ns"]).encode()),
        ("command_id", row["command_id"].encode()),
        ("correlation_id", row["correlation_id"].encode()),
        ("hash", bytes(row["hash"]).hex().encode()),
        ("recorded_at_us", str(row["recorded_at_us"]).encode()),
    ]


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
        rows = await self._conn.fetch(
            "SELECT notification_id, event_id, event_type, schema_version, originator_id, "
            "originator_version, occurred_at_ns, command_id, correlation_id, hash, state, "
            "recorded_at, (extract(epoch FROM recorded_at) * 1000000)::bigint AS recorded_at_us "
            "FROM events WHERE notification_id > $1 ORDER BY notification_id LIMIT $2",
            after,
            self.batch_size,
        )
        key = self.name.encode()
        return [
            Outgoing(int(r["notification_id"]), key, bytes(r["state"]), headers_of(r),
                     r["recorded_at"])
            for r in rows
        ]  # fmt: skip

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
            linger_ms=5,
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
        futures = [
            await producer.send(self.topic, m.value, key=m.key, headers=m.headers) for m in batch
        ]
        await asyncio.wait_for(asyncio.gather(*futures), self.send_timeout)

    # -- the loop ------------------------------------------------------------------------------

    async def publish_available(self) -> int:
        """Publish everything committed after the recorded position; returns how many."""
        position = await self.published_position()
        sent = 0
        while batch := await self._read(position):
            await self._send(batch)
            last = batch[-1]
            lag = max(0.0, (datetime.now(UTC) - last.recorded_at).total_seconds())
            await self._record(last.position, lag)
            position = last.position
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
        self._conn = await asyncpg.connect(self.dsn)
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


def is_broker_error(exc: BaseException) -> bool:
    """Errors that mean "the broker did not acknowledge": retry from the recorded position."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return False
    return isinstance(exc, KafkaError | TimeoutError | ConnectionError)
