"""Projectors fed by the real broker: duplicates change nothing, a crash mid-batch resumes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka_source import KafkaSource
from infra.readmodels import EventStoreSource, PostgresReadModels
from infra.relay import Relay, ensure_topic
from infra.settings import Settings
from projections.base import Envelope, Projector, Tx
from projections.registry import all_projectors
from projections.runner import ProjectionRunner
from tests.integration.test_projections import (
    Market,
    project_from_store,
    run_market,
    run_until_caught_up,
    table_rows,
)
from tests.integration.test_relay import wait_published


@pytest.fixture
async def projected(migrated_database: str) -> Market:
    """A market whose read models were built from the event store: the reference tables."""
    market = await run_market(migrated_database)
    await project_from_store(market.dsn, batch_size=13)
    return market


async def publish(market: Market, servers: str) -> str:
    topic = f"test.events.{uuid.uuid4().hex[:10]}"
    await ensure_topic(servers, topic)
    relay = Relay(market.dsn, servers, topic=topic)
    task = asyncio.create_task(relay.run())
    try:
        await wait_published(market.dsn, market.head)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return topic


async def deliver_again(servers: str, topic: str, first: int) -> None:
    """Re-send the first `first` messages, as a relay restarted before recording would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        copied = 0
        while copied < first:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for m in records[: first - copied]:
                    await producer.send_and_wait(topic, m.value, key=m.key, headers=list(m.headers))
                    copied += 1
    finally:
        await producer.stop()
        await consumer.stop()


async def project_from_kafka(
    market: Market,
    servers: str,
    topic: str,
    group: str,
    projectors: list[Projector],
    delivered_at_least: int = 0,
) -> int:
    storage = PostgresReadModels(market.dsn)
    store = EventStoreSource(market.dsn)
    source = KafkaSource(servers, group_id=group, topic=topic, max_records=50)
    await storage.open()
    await store.open()
    await source.open()
    try:
        runner = ProjectionRunner(storage, projectors, backfill=store)
        await run_until_caught_up(
            runner, source, market.head, until=lambda: source.delivered >= delivered_at_least
        )
        return source.delivered
    finally:
        await source.close()
        await store.close()
        await storage.close()


async def test_a_message_delivered_twice_changes_nothing(
    projected: Market, settings: Settings
) -> None:
    reference = await table_rows(projected.dsn)  # built straight from the event store
    topic = await publish(projected, settings.kafka_servers)
    await deliver_again(settings.kafka_servers, topic, 120)
    await empty_read_models(projected)
    delivered = await project_from_kafka(
        projected,
        settings.kafka_servers,
        topic,
        f"g-{uuid.uuid4().hex[:8]}",
        all_projectors(),
        delivered_at_least=projected.head + 120,
    )
    assert delivered == projected.head + 120
    assert await table_rows(projected.dsn) == reference


async def empty_read_models(market: Market) -> None:
    storage = PostgresReadModels(market.dsn, pool_size=1)
    await storage.open()
    try:
        async with storage.transaction() as tx:
            for table in {t for p in all_projectors() for t in p.tables}:
                await tx.execute(f"TRUNCATE {table}")
            await tx.execute("DELETE FROM projection_positions")
    finally:
        await storage.close()


class Crash(Exception):
    """Stands for the process dying in the middle of a transaction."""


class CrashingAt(Projector):
    """Wraps a projector and fails once when it reaches `position` (mid-batch): the events
    before it are already folded into the batch when it dies."""

    def __init__(self, inner: Projector, position: int) -> None:
        super().__init__()
        self.inner, self.position = inner, position
        self.name, self.tables = inner.name, inner.tables

    async def apply_batch(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:
        positions = [e.position for e in envelopes]
        if self.position in positions:
            await self.inner.apply_batch(tx, envelopes[: positions.index(self.position)])
            raise Crash(f"{self.name} died at {self.position}")
        await self.inner.apply_batch(tx, envelopes)

    def project(self, envelope: Envelope) -> None:
        raise NotImplementedError

    async def flush(self, tx: Tx) -> None:
        await self.inner.flush(tx)

    def reset(self) -> None:
        self.inner.reset()


async def test_a_projector_killed_mid_batch_resumes_without_loss_or_double_count(
    projected: Market, settings: Settings
) -> None:
    reference = await table_rows(projected.dsn)
    topic = await publish(projected, settings.kafka_servers)
    await empty_read_models(projected)
    group = f"g-{uuid.uuid4().hex[:8]}"
    crash_at = projected.head // 2 + 7  # inside a batch of 50, not on its edge
    first_life = [CrashingAt(p, crash_at) for p in all_projectors()]
    try:
        await project_from_kafka(projected, settings.kafka_servers, topic, group, first_life)
    except Crash:
        pass
    else:
        raise AssertionError("the projector should have died")
    redelivered = await project_from_kafka(
        projected, settings.kafka_servers, topic, group, all_projectors()
    )
    assert 0 < redelivered < projected.head  # resumed from committed offsets, not from zero
    assert await table_rows(projected.dsn) == reference
