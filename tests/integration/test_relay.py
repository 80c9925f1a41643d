"""The relay on the real broker: every event, in order, once acknowledged; kill -9 and a broker
restart lose nothing (a consumer drops republished duplicates by position)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from commands.core import Core
from infra.eventstore import PostgresEventStore
from infra.readmodels import relay_status
from infra.relay import Relay, ensure_topic
from infra.settings import Settings
from infra.stack import Stack
from infra.stack.kafka import KAFKA_VERSION, Kafka
from tests.conftest import free_port
from tests.unit.domain import factories as f
from tests.unit.projections.scenario import market_commands

ROOT = Path(__file__).resolve().parents[2]


async def consume_all(
    servers: str, topic: str, expected: int, timeout: float = 60
) -> list[tuple[int, dict[str, bytes], bytes]]:
    """Every message of the topic from the start: (position, headers, value), in offset order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: list[tuple[int, dict[str, bytes], bytes]] = []
        async with asyncio.timeout(timeout):
            while len({m[0] for m in out}) < expected:
                fetched = await consumer.getmany(timeout_ms=500)
                for records in fetched.values():
                    for m in records:
                        headers = dict(m.headers)
                        out.append((int(headers["position"]), headers, m.value))
        return out
    finally:
        await consumer.stop()


@pytest.fixture
def topic() -> str:
    return f"test.events.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def core(migrated_database: str) -> AsyncIterator[Core]:
    store = PostgresEventStore(migrated_database)
    await store.open()
    running = Core(store)
    await running.start("test-core")
    yield running
    await running.stop()
    await store.close()


async def submit_all(core: Core, orders: int, seed: int = 3, pause: float = 0.0) -> int:
    """Submit the market's commands one after the other (``pause`` s apart); the head."""
    for command in market_commands(orders, seed):
        await core.submit(command)
        if pause:
            await asyncio.sleep(pause)
    return core.position


async def wait_published(dsn: str, head: int, timeout: float = 90) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(timeout):
            while (await relay_status(conn) or [None])[0] is None or (await relay_status(conn))[
                0
            ].position < head:
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


def in_log_order(messages: list[tuple[int, dict[str, bytes], bytes]]) -> list[int]:
    """What a consumer keeps: each position once, dropping any position not above the last."""
    kept: list[int] = []
    for position, _, _ in messages:
        if not kept or position > kept[-1]:
            kept.append(position)
    return kept


async def test_the_relay_publishes_every_event_in_order_with_its_headers_and_lag(
    core: Core, migrated_database: str, settings: Settings, topic: str
) -> None:
    head = await submit_all(core, 40)
    await ensure_topic(settings.kafka_servers, topic)
    relay = Relay(migrated_database, settings.kafka_servers, topic=topic, batch_size=25)
    task = asyncio.create_task(relay.run())
    try:
        await wait_published(migrated_database, head)
        late = await core.submit(f.deposit(f.ALICE, f.USD, "1.00"))  # woken by NOTIFY
        await wait_published(migrated_database, late.positions[-1], timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    messages = await consume_all(settings.kafka_servers, topic, late.positions[-1])
    assert [m[0] for m in messages] == list(range(1, late.positions[-1] + 1))
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch(
            "SELECT notification_id, event_id, event_type, state FROM events ORDER BY 1"
        )
        status = (await relay_status(conn))[0]
    finally:
        await conn.close()
    for (position, headers, value), row in zip(messages, rows, strict=True):
        assert headers["event_id"].decode() == str(row["event_id"])
        assert headers["event_type"].decode() == row["event_type"]
        assert value == bytes(row["state"]) and position == row["notification_id"]
    assert relay.metrics.lag_seconds is not None and relay.metrics.published == len(rows)
    assert status.lag_seconds is not None and status.position == status.head


def relay_process(dsn: str, servers: str, topic: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRADECORE_ENV": "test",
        "TRADECORE_DATABASE_URL": dsn,
        "TRADECORE_KAFKA_BOOTSTRAP": servers,
        "TRADECORE_KAFKA_TOPIC": topic,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tradecore.cli_projections", "relay"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_a_relay_killed_with_sigkill_mid_stream_loses_no_event_after_restart(
    core: Core, migrated_database: str, settings: Settings, topic: str
) -> None:
    await ensure_topic(settings.kafka_servers, topic)
    first = relay_process(migrated_database, settings.kafka_servers, topic)
    try:
        # paced, so that the log is still growing when the relay (a process that takes a
        # moment to start) has published part of it
        writing = asyncio.create_task(submit_all(core, 600, seed=11, pause=0.02))
        conn = await asyncpg.connect(migrated_database)
        try:
            async with asyncio.timeout(60):  # kill it once it has published part of the stream
                while not (s := await relay_status(conn)) or s[0].position < 50:
                    await asyncio.sleep(0.05)
        finally:
            await conn.close()
        assert not writing.done()  # events keep committing after the kill
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        conn = await asyncpg.connect(migrated_database)
        try:
            at_kill = (await relay_status(conn))[0].position
        finally:
            await conn.close()
        head = await writing
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    assert at_kill < head  # killed mid-stream: the second relay had work left
    second = relay_process(migrated_database, settings.kafka_servers, topic)
    try:
        await wait_published(migrated_database, head)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    messages = await consume_all(settings.kafka_servers, topic, head)
    assert in_log_order(messages) == list(range(1, head + 1))


@pytest.fixture
def private_kafka(tmp_path: Path, stack: Stack) -> Iterator[Kafka]:
    """A broker of our own on free ports, so stopping it disturbs nobody."""
    shared = Kafka(Settings(env="test"), lambda _: None)
    settings = Settings(
        env="test",
        stack_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap="256m",
    )
    broker = Kafka(settings, lambda _: None)
    broker.libs.parent.mkdir(parents=True)
    broker.libs.symlink_to(shared.libs)  # the jars are resolved once, in the shared stack
    assert (broker.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(settings.stack_dir, ignore_errors=True)


async def test_the_relay_survives_a_broker_restart_mid_stream_without_losing_an_event(
    core: Core, migrated_database: str, private_kafka: Kafka, topic: str
) -> None:
    servers = private_kafka.settings.kafka_servers
    await ensure_topic(servers, topic)
    relay = Relay(migrated_database, servers, topic=topic, batch_size=20, send_timeout=5)
    task = asyncio.create_task(relay.run())
    try:
        head = await submit_all(core, 40, seed=5)
        await wait_published(migrated_database, head)
        await asyncio.to_thread(private_kafka.stop)
        during = await submit_all(core, 60, seed=6)  # committed while the broker is down
        await asyncio.sleep(2)
        assert relay.metrics.position == head  # nothing counts as published without an ack
        await asyncio.to_thread(private_kafka.start)
        await wait_published(migrated_database, during)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Whether the producer had to be rebuilt (metrics.reconnects) depends on how long the
    # broker was away; what must hold either way is below: every event, once, in order.
    messages = await consume_all(servers, topic, during)
    assert in_log_order(messages) == list(range(1, during + 1))
