"""Each service in the local stack is the real thing: TimescaleDB, Kafka, Redis."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.settings import Settings
from infra.stack import Stack


def test_timescaledb_extension_is_present_and_create_hypertable_works(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        conn.execute("CREATE TABLE ticks (time timestamptz NOT NULL, price numeric NOT NULL)")
        conn.execute(
            "SELECT create_hypertable('ticks', 'time', chunk_time_interval => interval '1 hour')"
        )
        conn.execute(
            "INSERT INTO ticks SELECT t, 100 + extract(minute FROM t) "
            "FROM generate_series('2026-01-01 00:00+00'::timestamptz, "
            "'2026-01-01 02:59+00', interval '1 minute') AS t"
        )
        chunks = conn.execute("SELECT count(*) FROM show_chunks('ticks')").fetchone()
        buckets = conn.execute(
            "SELECT time_bucket('1 hour', time) AS b, first(price, time), last(price, time) "
            "FROM ticks GROUP BY b ORDER BY b"
        ).fetchall()
    assert version is not None and version[0].startswith("2.")
    assert chunks == (3,)
    assert [(float(f), float(last)) for _, f, last in buckets] == [(100.0, 159.0)] * 3


async def test_idempotent_producer_message_is_read_back_by_a_consumer_group(
    settings: Settings, stack: Stack
) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(topic, key=b"BTC-USD", value=f"event-{i}".encode())
            for i in range(5)
        ]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < 5:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.extend((r.key, r.value) for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert len({s.partition for s in sent}) == 1  # one key, one partition, order kept
    assert received == [(b"BTC-USD", f"event-{i}".encode()) for i in range(5)]


async def test_redis_pubsub_delivers_a_message_to_a_subscriber(
    settings: Settings, stack: Stack
) -> None:
    channel = f"test:{uuid.uuid4().hex[:8]}"
    subscriber = aioredis.Redis.from_url(settings.redis_dsn)
    publisher = aioredis.Redis.from_url(settings.redis_dsn)
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe(channel)
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        receivers = await publisher.publish(channel, b"trade:42")
        async with asyncio.timeout(5):
            message = None
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
        await publisher.aclose()
    assert receivers == 1
    assert message["data"] == b"trade:42"
