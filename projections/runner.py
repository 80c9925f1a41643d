"""The projector runner: applies batches of events to each projector exactly once.

Each projector's rows and its position (`projection_positions`) are written in one
transaction; events at or below the stored position are skipped, so a redelivered message
or a replayed batch changes nothing. A batch is applied to all projectors concurrently, each
in its own transaction on its own connection. The runner does not care where events come
from: a `Source` (Kafka consumer group or the event store itself, both in `infra/`) hands it
batches in log order, and it tells the source when a batch is safely applied.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Protocol

from domain.events import InstrumentListed
from projections.base import Envelope, Projector, Tx, listings, ns_to_datetime

log = logging.getLogger(__name__)


class ProjectionGap(RuntimeError):
    """Events are missing between a projector's position and the next batch: it stops."""


class DeferredTx(Tx, Protocol):
    """A transaction sent as one script at the end: reads run at once, writes are held until
    `commit`, which also moves the projector's position (see `infra.readmodels`)."""

    async def commit(self, name: str, after: int, to: int, event_at: datetime) -> bool:
        """Run the held writes and move `name` from `after` to `to`, atomically; False (and
        nothing written) when the stored position is not `after`."""
        ...


class Storage(Protocol):
    """Where read models live: hands out transactions."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    def deferred(self) -> AbstractAsyncContextManager[DeferredTx]: ...

    async def execute(self, query: str, *args: Any) -> str:
        """One statement in its own transaction (autocommit)."""
        ...


class PositionMoved(RuntimeError):
    """A projector's stored position is not the one this runner last committed."""


ADVANCE = (
    "UPDATE projection_positions SET position = $2, event_at = $3, updated_at = now() "
    "WHERE name = $1 AND position = $4"
)


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
    if lock:
        # One round trip: create the row if missing, lock it, read it.
        return int(
            await tx.fetchval(
                "INSERT INTO projection_positions (name, position) VALUES ($1, 0) "
                "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING position",
                name,
            )
        )
    await tx.execute(
        "INSERT INTO projection_positions (name, position) VALUES ($1, 0) "
        "ON CONFLICT (name) DO NOTHING",
        name,
    )
    return int(await tx.fetchval("SELECT position FROM projection_positions WHERE name = $1", name))


@dataclass
class RunnerMetrics:
    """What the runner applied, and the commit-to-read-model lag of its last batch."""

    events: int = 0  # distinct events applied (the batch, not counted per projector)
    batches: int = 0
    lag_seconds: float | None = None  # last event of the last batch: commit -> all applied


class ProjectionRunner:
    """Applies each batch to every projector, each in its own transaction on its own
    connection, concurrently (their database round trips overlap)."""

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
        self.metrics = RunnerMetrics()
        self._positions: dict[str, int] = {}  # each projector's, as of this runner's commit

    async def positions(self) -> dict[str, int]:
        async with self.storage.transaction() as tx:
            return {p.name: await stored_position(tx, p.name) for p in self.projectors}

    async def apply(self, batch: Sequence[Envelope]) -> None:
        if not batch:
            return
        ordered = in_order(batch)
        results = await asyncio.gather(
            *(self.apply_to(p, ordered) for p in self.projectors), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # the first failure; the other projectors' batches committed
        m = self.metrics
        m.events, m.batches = m.events + len(ordered), m.batches + 1
        last = ordered[-1].recorded_at_us
        if last is not None:
            m.lag_seconds = max(0.0, time.time() - last / 1e6)

    async def apply_to(self, projector: Projector, batch: Sequence[Envelope]) -> int:
        """Apply the new part of `batch` to one projector; returns its position afterwards.
        `batch` is in position order without duplicates (see `in_order`).

        The runner remembers each projector's position as of its own last commit, so a batch
        need not read it first: the position update at the end names the position the batch
        was built on, and if another process moved it meanwhile (a rebuild, a second runner)
        the update matches nothing, the transaction is rolled back and the batch is applied
        again from the stored position. A batch with no event the projector handles only
        moves its position, in one autocommit statement."""
        name = projector.name
        known = self._positions.pop(name, None)  # valid again only once this batch committed
        if known is not None and _idle(projector, known, batch):
            last = batch[-1]
            status = await self.storage.execute(
                ADVANCE, name, last.position, ns_to_datetime(last.event.timestamp_ns), known
            )
            if status == "UPDATE 1":
                self._positions[name] = last.position
                return last.position
            known = None  # moved by someone else: read it, below
        try:
            position = await self._apply_to(projector, batch, known)
        except PositionMoved:
            log.warning("%s: its position moved under this runner; applying again", name)
            position = await self._apply_to(projector, batch, None)
        except ProjectionGap:
            if known is None:
                raise
            # Measured from the position this runner remembered: the stored one decides.
            position = await self._apply_to(projector, batch, None)
        self._positions[name] = position
        return position

    async def _apply_to(
        self, projector: Projector, batch: Sequence[Envelope], known: int | None
    ) -> int:
        if known is not None:
            batch = await self._fresh(projector, known, batch)
            if not batch:
                return known
            if not listings(batch):
                return await self._apply_deferred(projector, batch, known)
        # The first batch (the stored position is read and locked), and listings (which are
        # written, then read back as units), take an ordinary transaction.
        try:
            async with self.storage.transaction() as tx:
                if known is None:
                    projector.reset()  # rows it kept may be older than the stored ones
                    position = await stored_position(tx, projector.name, lock=True)
                else:
                    position = known
                fresh = await self._fresh(projector, position, batch)
                if not fresh:
                    return position
                await projector.apply_batch(tx, fresh)
                await projector.flush(tx)
                last = fresh[-1]
                status = await tx.execute(
                    ADVANCE,
                    projector.name,
                    last.position,
                    ns_to_datetime(last.event.timestamp_ns),
                    position,
                )
                if status != "UPDATE 1":
                    raise PositionMoved(projector.name)
                return last.position
        except BaseException:
            projector.reset()
            raise

    async def _apply_deferred(
        self, projector: Projector, fresh: Sequence[Envelope], position: int
    ) -> int:
        """The usual batch (`fresh`: the events after `position`, gap-free), in one round
        trip for its writes and position, plus the reads its projector needs: the writes are
        held and sent with the position update as one script, which fails as a whole if the
        position moved."""
        try:
            async with self.storage.deferred() as tx:
                await projector.apply_batch(tx, fresh)
                await projector.flush(tx)
                last = fresh[-1]
                at = ns_to_datetime(last.event.timestamp_ns)
                if not await tx.commit(projector.name, position, last.position, at):
                    raise PositionMoved(projector.name)
                return last.position
        except BaseException:
            projector.reset()
            raise

    async def _fresh(
        self, projector: Projector, position: int, batch: Sequence[Envelope]
    ) -> Sequence[Envelope]:
        """The events after `position`, gap-free; a gap is filled from the log or refused."""
        if (
            batch
            and batch[0].position == position + 1
            and (batch[-1].position - batch[0].position == len(batch) - 1)
        ):
            return batch  # the usual case: exactly the next run of positions (shared, unchanged)
        fresh: list[Envelope] = []
        expected = position + 1
        for envelope in batch:
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
        with fewer_collections():
            start = min((await self.positions()).values(), default=0)
            async for batch in source.batches(start):
                await self.apply(batch)
                await source.applied(batch)


def _idle(projector: Projector, position: int, batch: Sequence[Envelope]) -> bool:
    """The batch is exactly the next run of positions and holds nothing `projector` acts on
    (every projector records listings)."""
    handles = projector.handles
    return (
        handles is not None
        and bool(batch)
        and batch[0].position == position + 1
        and batch[-1].position - batch[0].position == len(batch) - 1
        and not any(type(e.event) in handles or type(e.event) is InstrumentListed for e in batch)
    )


def in_order(batch: Sequence[Envelope]) -> Sequence[Envelope]:
    """The batch in position order, each position once (redeliveries can repeat one)."""
    if all(a.position < b.position for a, b in pairwise(batch)):
        return batch
    return sorted({e.position: e for e in batch}.values(), key=lambda e: e.position)


async def reset_read_models(storage: Storage, projectors: Sequence[Projector]) -> None:
    """Empty the projectors' tables and set their positions to 0, in one transaction."""
    async with storage.transaction() as tx:
        await tx.execute(f"TRUNCATE {', '.join(t for p in projectors for t in p.tables)}")
        await tx.execute(
            "INSERT INTO projection_positions (name, position) SELECT unnest($1::text[]), 0 "
            "ON CONFLICT (name) DO UPDATE SET position = 0, event_at = NULL, updated_at = now()",
            [p.name for p in projectors],
        )
    for projector in projectors:
        projector.reset()


SERVING_GC_THRESHOLD = 50_000
"""Allocations between young collections in a serving process: the gateway,
the market-data processes and the live publisher (the default is 700). Every
request leaves objects in flight for tens of milliseconds, so with the default the collector
ran 200 times a second and kept promoting them into older generations it then walked again:
1.4 s of 15 in the order-entry benchmark, with pauses up to 80 ms; 0.08 s and 15 ms with this
(docs/benchmarks.md, session 6). Cycles are still collected, just later."""


@contextmanager
def fewer_collections(threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while projecting (and, with
    `SERVING_GC_THRESHOLD`, while a gateway, market-data or publisher process serves).

    A batch keeps thousands of envelopes alive, so with the default threshold (700
    allocations) the collector runs every few events and keeps walking every live object in
    the older generations: measured at 15-20 % of the runner's CPU (docs/benchmarks.md, read
    side). Projection state has few reference cycles; they are still collected, just
    later. The process-wide thresholds are restored on exit."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], threshold), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


# Events per rebuild transaction: 20,000 rebuilt 8 % faster than 10,000 (fewer statements,
# and fewer orders written twice because they span two batches); about 20 MB of envelopes.
REBUILD_BATCH = 20_000


async def rebuild_all(
    storage: Storage,
    projectors: Sequence[Projector],
    reader: EventReader,
    *,
    batch_size: int = REBUILD_BATCH,
    progress: Callable[[int], None] | None = None,
    ahead: int = 2,
) -> int:
    """Empty the projectors' tables, reset their positions, and replay the whole log into
    them. Each batch is read (and decoded) once for all; each projector then goes through
    the batches at its own pace (its own transaction per batch, as `ProjectionRunner`),
    at most `ahead` batches behind the reader, so one projector's database writes overlap
    the others' Python work instead of every batch waiting for the slowest. `progress` is
    told how many more events the slowest projector has applied. Returns the last position.
    """
    await reset_read_models(storage, projectors)
    runner = ProjectionRunner(storage, projectors)
    queues = [asyncio.Queue[Sequence[Envelope] | None](maxsize=ahead) for _ in projectors]
    applied = [0] * len(projectors)
    reported = 0
    last = 0

    async def read() -> None:
        nonlocal last
        while batch := await reader.read_envelopes(last, batch_size):
            last = batch[-1].position
            for queue in queues:
                await queue.put(batch)
        for queue in queues:
            await queue.put(None)

    async def apply(i: int) -> None:
        nonlocal reported
        projector, queue = runner.projectors[i], queues[i]
        while (batch := await queue.get()) is not None:
            await runner.apply_to(projector, batch)
            applied[i] += len(batch)
            slowest = min(applied)
            if progress is not None and slowest > reported:
                progress(slowest - reported)
                reported = slowest

    with fewer_collections():
        tasks = [asyncio.ensure_future(read())]
        tasks += [asyncio.ensure_future(apply(i)) for i in range(len(projectors))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    return last


async def rebuild(
    storage: Storage,
    projector: Projector,
    reader: EventReader,
    *,
    batch_size: int = REBUILD_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Empty one projector's tables, reset its position, and replay the whole log into it."""
    return await rebuild_all(storage, [projector], reader, batch_size=batch_size, progress=progress)
