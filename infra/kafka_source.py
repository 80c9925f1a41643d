"""Projector source on Kafka: a consumer group reading the relay's topic.

Offsets are committed only after a batch is in every projector's transaction, so a crash
redelivers it; the runner skips what it already applied by the `position` header. Messages
are decoded with the domain's own `from_dict` (the value is the event store's payload).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer

from domain.events import from_dict
from infra.readmodels import loads_payload
from infra.relay import HEADER_NAMES, TOPIC
from projections.base import Envelope

log = logging.getLogger(__name__)

_COUNT = len(HEADER_NAMES)
_POSITION, _EVENT_ID, _RECORDED = (
    HEADER_NAMES.index(n) for n in ("position", "event_id", "recorded_at_us")
)


def envelope_of(headers: Sequence[tuple[str, bytes]], value: bytes) -> Envelope:
    if (
        len(headers) == _COUNT
        and headers[_POSITION][0] == "position"
        and headers[_EVENT_ID][0] == "event_id"
        and headers[_RECORDED][0] == "recorded_at_us"
    ):
        # The relay's own layout (the usual case): read the three headers by index.
        return Envelope(
            int(headers[_POSITION][1]),
            headers[_EVENT_ID][1].decode(),
            from_dict(loads_payload(value)),
            int(headers[_RECORDED][1]),
        )
    meta = dict(headers)
    if "position" not in meta:
        raise ValueError("a message without a position header is not from the relay")
    recorded = meta.get("recorded_at_us")
    return Envelope(
        position=int(meta["position"]),
        event_id=meta.get("event_id", b"").decode(),
        event=from_dict(loads_payload(value)),
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
        self._offsets: deque[tuple[Sequence[Envelope], dict[Any, int]]] = deque()
        self._commit: asyncio.Future[None] | None = None

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
            try:
                await self._settle()
            except Exception:  # not committed: those events are redelivered and skipped
                log.warning("committing the last offsets failed on close", exc_info=True)
            finally:
                await self._consumer.stop()
                self._consumer = None

    async def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]:
        """Everything the group has not committed; `after` is left to the runner's skip."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("KafkaSource.open() was not called")
        while True:
            fetched = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
            if not fetched:
                continue
            batch: list[Envelope] = []
            for records in fetched.values():
                batch += [envelope_of(m.headers, m.value) for m in records]
            self.delivered += len(batch)
            # What to commit once this batch is applied: the next offset of each partition.
            self._offsets.append(
                (batch, {tp: records[-1].offset + 1 for tp, records in fetched.items() if records})
            )
            yield batch

    async def applied(self, batch: Sequence[Envelope]) -> None:
        """Commit the batch's offsets without waiting for the broker: the next batch is
        fetched and applied meanwhile. At most one commit is in flight, and its failure
        surfaces here on the next batch. A commit lost to a crash only means redelivery,
        which the runner skips by position."""
        consumer = self._consumer
        if consumer is None:
            return
        while self._offsets:
            done, offsets = self._offsets.popleft()
            if done is batch:
                break
        else:
            raise ValueError("applied() was given a batch this source did not yield")
        await self._settle()
        self._commit = asyncio.ensure_future(consumer.commit(offsets))

    async def _settle(self) -> None:
        commit, self._commit = self._commit, None
        if commit is not None:
            await commit
