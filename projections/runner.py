"""The projector runner: applies batches of events to each projector exactly once.

Each projector's rows and its position (`projection_positions`) are written in one
transaction; events at or below the stored position are skipped, so a redelivered message
or a replayed batch changes nothing. The runner does not care where events come from: a
`Source` (Kafka consumer group or the event store itself, both in `infra/`) hands it
batches in log order, and it tells the source when a batch is safely applied.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from projections.base import Envelope, Projector, Tx, ns_to_datetime

log = logging.getLogger(__name__)


class ProjectionGap(RuntimeError):
    """Events are missing between a projector's position and the next batch: it stops."""


class Storage(Protocol):
    """Where read models live: hands out transactions."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...


class EventReader(Protocol):
    """Reads the log itself (the truth) from a position: fills gaps, serves rebuilds."""

    async def read_envelopes(self, after: int, limit: int) -> list[Envelope]: ...


class Source(Protocol):
    """Batches of events in log order, starting after `after` (duplicates allowed)."""

    def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]: ...

    async def applied(self, batch: Sequence[Envelope]) -> None:
        """The batch is in every projector's transaction: the source may forget it."""
        ...


async def stored_position(tx: Tx, name: str, *, lock: bool = False) -> int:
    await tx.execute(
        "INSERT INTO projection_positions (name, position) VALUES ($1, 0) "
        "ON CONFLICT (name) DO NOTHING",
        name,
    )
    query = "SELECT position FROM projection_positions WHERE name = $1"
    return int(await tx.fetchval(query + (" FOR UPDATE" if lock else ""), name))


class ProjectionRunner:
    def __init__(
        self,
        storage: Storage,
        projectors: Sequence[Projector],
        *,
        backfill: EventReader | None = None,
    ) -> None:
        self.storage = storage
        self.projectors = list(projectors)
        self.backfill = backfill

    async def positions(self) -> dict[str, int]:
        async with self.storage.transaction() as tx:
            return {p.name: await stored_position(tx, p.name) for p in self.projectors}

    async def apply(self, batch: Sequence[Envelope]) -> None:
        for projector in self.projectors:
            await self.apply_to(projector, batch)

    async def apply_to(self, projector: Projector, batch: Sequence[Envelope]) -> int:
        """Apply the new part of `batch` to one projector; returns its position afterwards."""
        try:
            async with self.storage.transaction() as tx:
                position = await stored_position(tx, projector.name, lock=True)
                fresh = await self._fresh(projector, position, batch)
                if not fresh:
                    return position
                for envelope in fresh:
                    await projector.apply(tx, envelope)
                await projector.flush(tx)
                last = fresh[-1]
                await tx.execute(
                    "UPDATE projection_positions SET position = $2, event_at = $3, "
                    "updated_at = now() WHERE name = $1",
                    projector.name,
                    last.position,
                    ns_to_datetime(last.event.timestamp_ns),
                )
                return last.position
        except BaseException:
            projector.reset()
            raise

    async def _fresh(
        self, projector: Projector, position: int, batch: Sequence[Envelope]
    ) -> list[Envelope]:
        """The events after `position`, gap-free; a gap is filled from the log or refused."""
        fresh: list[Envelope] = []
        expected = position + 1
        for envelope in sorted(batch, key=lambda e: e.position):
            if envelope.position < expected:
                continue  # already applied (redelivery) or a duplicate inside the batch
            if envelope.position > expected:
                if self.backfill is None:
                    raise ProjectionGap(
                        f"projector {projector.name!r} is at position {expected - 1} but the "
                        f"next event offered is {envelope.position}: events are missing"
                    )
                missing = await self.backfill.read_envelopes(
                    expected - 1, envelope.position - expected
                )
                if [e.position for e in missing] != list(range(expected, envelope.position)):
                    raise ProjectionGap(
                        f"projector {projector.name!r}: the log does not have positions "
                        f"{expected}..{envelope.position - 1}"
                    )
                log.warning(
                    "%s: filled positions %d..%d from the event store",
                    projector.name,
                    expected,
                    envelope.position - 1,
                )
                fresh.extend(missing)
            fresh.append(envelope)
            expected = envelope.position + 1
        return fresh

    async def run(self, source: Source) -> None:
        """Apply every batch the source yields, until it ends or the task is cancelled."""
        start = min((await self.positions()).values(), default=0)
        async for batch in source.batches(start):
            await self.apply(batch)
            await source.applied(batch)


async def rebuild(
    storage: Storage,
    projector: Projector,
    reader: EventReader,
    *,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Empty the projector's tables, reset its position, and replay the whole log into it."""
    async with storage.transaction() as tx:
        await tx.execute(f"TRUNCATE {', '.join(projector.tables)}")
        await tx.execute(
            "INSERT INTO projection_positions (name, position) VALUES ($1, 0) "
            "ON CONFLICT (name) DO UPDATE SET position = 0, event_at = NULL, updated_at = now()",
            projector.name,
        )
    projector.reset()
    runner = ProjectionRunner(storage, [projector])
    position = 0
    while True:
        batch = await reader.read_envelopes(position, batch_size)
        if not batch:
            return position
        position = await runner.apply_to(projector, batch)
        if progress is not None:
            progress(len(batch))
