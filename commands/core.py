"""The live core: one sequencer deciding commands in memory and committing them in groups.

Commands that arrive while a commit is in flight are decided together, in arrival order,
and their events are committed in one transaction; every caller is answered only after
COMMIT. A failed commit fails every command in its batch and the in-memory state is
rebuilt from the log (snapshot + tail), i.e. as it was before the batch.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from commands.ports import EventStore, NewEvent, RecordedEvent, Snapshot, WriterFenced
from domain.commands import Command
from domain.events import Event, from_dict, to_dict
from domain.exchange import Exchange

EVENT_NAMESPACE = uuid.UUID("5b0e7c8e-59f4-4d43-a0a4-5f6a1c1e7a10")
STREAM_NAMESPACE = uuid.UUID("0c7d1f2a-8a8f-4f55-9f0e-3d2b6c9e4b21")


class CoreStopped(RuntimeError):
    """The core is not running (not started, stopping, or fenced by another writer)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to one command, given after its events are durable."""

    command_id: str
    events: tuple[Event, ...]
    positions: tuple[int, ...]  # empty for a duplicate: nothing new was written
    duplicate: bool = False

    @property
    def rejected(self) -> bool:
        return any(type(e).__name__ in ("OrderRejected", "CommandRejected") for e in self.events)


def stream_key(event: Event) -> str:
    """The entity an event belongs to: an order, a symbol's trades, an account, an instrument."""
    name = type(event).__name__
    if name == "TradeExecuted":
        return f"trades:{getattr(event, 'symbol')}"  # noqa: B009
    if name == "CommandRejected":
        return f"rejections:{getattr(event, 'subject', '')}"
    owners = (("order_id", "order"), ("account_id", "account"), ("symbol", "instrument"))
    for attr, prefix in owners:
        value = getattr(event, attr, None)
        if value:
            return f"{prefix}:{value}"
    return f"misc:{name}"


def encode_payload(event: Event) -> bytes:
    return json.dumps(to_dict(event), separators=(",", ":"), sort_keys=True).encode()


def decode_payload(payload: bytes) -> Event:
    return from_dict(json.loads(payload))


class Streams:
    """Per-stream version counters (the eventsourcing layout's originator versions)."""

    def __init__(self, versions: dict[str, int] | None = None) -> None:
        self.versions: dict[str, int] = dict(versions or {})

    def envelope(self, event: Event, index: int) -> NewEvent:
        key = stream_key(event)
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        return NewEvent(
            event_id=uuid.uuid5(EVENT_NAMESPACE, f"{event.command_id}/{index}"),
            stream_id=uuid.uuid5(STREAM_NAMESPACE, key),
            stream_version=version,
            event_type=event.event_type,
            schema_version=event.schema_version,
            payload=encode_payload(event),
            occurred_at_ns=event.timestamp_ns,
            command_id=event.command_id,
            correlation_id=event.correlation_id,
        )

    def observe(self, event: Event, version: int) -> None:
        """Replay: versions are rebuilt from the log itself."""
        self.versions[stream_key(event)] = version


class Core:
    """The single writer. `submit` is the in-process async API the gateway calls."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_batch: int = 2_000,
        snapshot_every: int = 50_000,
        on_commit: Callable[[list[RecordedEvent]], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self.on_commit = on_commit
        self.exchange = Exchange()
        self.streams = Streams()
        self.position = 0
        self._last_snapshot = 0
        self._queue: asyncio.Queue[tuple[Command, asyncio.Future[CommandResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.fatal: Exception | None = None

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self, holder: str | None = None, *, standby: bool = False) -> None:
        """Become the writer (or wait as a standby), rebuild state from the log, then serve."""
        await self.store.acquire_writer(holder or "core", wait=standby)
        await self.recover()
        self._task = asyncio.create_task(self._run(), name="tradecore-sequencer")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(CoreStopped("the core stopped before deciding this command"))

    async def recover(self) -> None:
        """State = latest snapshot + every event after it (or the whole log)."""
        snapshot = await self.store.latest_snapshot()
        if snapshot is None:
            self.exchange, self.streams, self.position = Exchange(), Streams(), 0
        else:
            self.exchange = Exchange.from_snapshot(snapshot.state["exchange"])
            self.streams = Streams(snapshot.state["streams"])
            self.position = snapshot.position
        self._last_snapshot = self.position
        await self.replay_tail()

    async def replay_tail(self, batch: int = 20_000, upto: int | None = None) -> int:
        """Apply every logged event after the current position (up to `upto`)."""
        replayed = 0
        while upto is None or self.position < upto:
            limit = batch if upto is None else min(batch, upto - self.position)
            rows = await self.store.read(self.position, limit)
            if not rows:
                break
            for row in rows:
                event = decode_payload(row.event.payload)
                self.exchange.apply(event)
                self.streams.observe(event, row.event.stream_version)
                self.position = row.position
            replayed += len(rows)
        return replayed

    # -- the API ---------------------------------------------------------------------------------

    async def submit(self, command: Command) -> CommandResult:
        """Decide `command`; returns after its events are committed (or raises)."""
        if self._task is None or self._stopping:
            raise CoreStopped("the core is not running")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((command, future))
        return await future

    def state_hash(self) -> str:
        return self.exchange.state_hash()

    # -- the sequencer ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                first = await self._queue.get()
                batch = [first]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._decide_and_commit(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Fenced, or the log cannot be read back: deciding on would risk a wrong state.
            self._stopping = True
            self.fatal = exc
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                future.set_exception(CoreStopped(f"the core stopped: {exc}"))
            raise

    async def _decide_and_commit(
        self, batch: Sequence[tuple[Command, asyncio.Future[CommandResult]]]
    ) -> None:
        decided: list[tuple[asyncio.Future[CommandResult], Command, tuple[Event, ...], bool]] = []
        envelopes: list[NewEvent] = []
        try:
            for command, future in batch:
                outcome = self.exchange.handle(command)
                decided.append((future, command, outcome.events, outcome.duplicate))
                if not outcome.duplicate:
                    envelopes.extend(
                        self.streams.envelope(e, i) for i, e in enumerate(outcome.events)
                    )
            recorded = await self.store.append(envelopes)
        except Exception as exc:
            if not isinstance(exc, WriterFenced):
                # The log is the truth: undo the batch in memory before anyone hears back.
                await self.recover()
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, WriterFenced):
                raise  # another core owns the log now: this one must stop deciding
            return
        self.position = recorded[-1].position if recorded else self.position
        if self.on_commit is not None and recorded:
            self.on_commit(recorded)
        at = 0
        for future, command, events, duplicate in decided:
            count = 0 if duplicate else len(events)
            positions = tuple(r.position for r in recorded[at : at + count])
            at += count
            if not future.done():
                future.set_result(CommandResult(command.command_id, events, positions, duplicate))
        if self.position - self._last_snapshot >= self.snapshot_every:
            await self.snapshot()

    async def snapshot(self) -> Snapshot:
        state: dict[str, Any] = {
            "exchange": self.exchange.snapshot(),
            "streams": dict(self.streams.versions),
        }
        snap = Snapshot(self.position, self.exchange.state_hash(), state)
        await self.store.save_snapshot(snap)
        self._last_snapshot = self.position
        return snap


@dataclass(frozen=True)
class ReplayCheck:
    """`tradecore core verify`: the state from zero against the state the core recorded."""

    position: int
    replayed_hash: str
    snapshot_position: int | None
    snapshot_hash: str | None
    replayed_at_snapshot: str | None
    recovered_hash: str

    @property
    def ok(self) -> bool:
        return self.replayed_hash == self.recovered_hash and (
            self.snapshot_hash is None or self.snapshot_hash == self.replayed_at_snapshot
        )


async def verify_replay(store: EventStore) -> ReplayCheck:
    """Replay the whole log from zero; compare with the latest snapshot and snapshot + tail."""
    snapshot = await store.latest_snapshot()
    zero = Core(store)
    at_snapshot = None
    if snapshot is not None:
        await zero.replay_tail(upto=snapshot.position)
        at_snapshot = zero.state_hash()
    await zero.replay_tail()
    recovered = Core(store)
    await recovered.recover()
    return ReplayCheck(
        position=zero.position,
        replayed_hash=zero.state_hash(),
        snapshot_position=None if snapshot is None else snapshot.position,
        snapshot_hash=None if snapshot is None else snapshot.state_hash,
        replayed_at_snapshot=at_snapshot,
        recovered_hash=recovered.state_hash(),
    )
