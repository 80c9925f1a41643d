"""Projector source on Kafka: a consumer group reading the relay's topic.

Offsets are committed only after a batch is in every projector's transaction, so a crash
redelivers it; the runner skips what it already applied by the `position` header. Messages
are decoded with the domain's own `from_dict` (the value is the event store's payload).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer

from domain.events import from_dict
from infra.relay import TOPIC
from projections.base import Envelope


def envelope_of(headers: Sequence[tuple[str, bytes]], value: bytes) -> Envelope:
    meta = dict(headers)
    if "position" not in meta:
        raise ValueError("a message without a position header is not from the relay")
    recorded = meta.get("recorded_at_us")
    return Envelope(
        position=int(meta["position"]),
        event_id=meta.get("event_id", b"").decode(),
        event=from_dict(json.loads(value.decode())),
        recorded_at_us=None if recorded is None else int(recorded),
    )


class KafkaSource:
    def __init__(
        self,
        servers: str,
        *,
        group_id: str = "tradecore-projectors",
        topic: str = TOPIC,
        max_records: int = 5_000,
        poll_ms: int = 500,
    ) -> None:
        self.servers = servers
        self.group_id = group_id
        self.topic = topic
        self.max_records = max_records
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None
        self.delivered = 0  # messages received, duplicates included

    async def open(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # Large fetches: a runner that fell behind catches up in big batches.
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]:
        """Everything the group has not committed; `after` is left to the runner's skip."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("KafkaSource.open() was not called")
        while True:
            fetched = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
            messages = [m for records in fetched.values() for m in records]
            if not messages:
                continue
            self.delivered += len(messages)
            yield [envelope_of(m.headers, m.value) for m in messages]

    async def applied(self, batch: Sequence[Envelope]) -> None:
        if self._consumer is not None:
            await self._consumer.commit()
