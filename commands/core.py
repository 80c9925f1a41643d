"""The live core: one sequencer deciding commands in memory and committing them in groups.

Commands that arrive while a commit is in flight are decided together, in arrival order,
and their events are committed in one transaction; every caller is answered only after
COMMIT. The sequencer is pipelined one batch deep: it decides the next batch while the
previous one is being committed, but hands it to the store only once that commit succeeded,
so positions stay gap-free and in commit order. A failed commit fails its batch (and the one
decided on top of it, which was never written) and the in-memory state is rebuilt from the
log (snapshot + tail), i.e. as it was before the failed batch, before anyone hears back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import json.encoder
import logging
import operator
import os
import signal
import sys
import tempfile
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from time import perf_counter
from typing import Any

from commands.ports import EventStore, NewEvent, RecordedEvent, Snapshot, WriterFenced
from domain.alerts import Alerts, KnownMarket
from domain.commands import ALERT_COMMANDS, Command, ListInstrument, OpenAccount
from domain.events import ALERT_EVENT_TYPES, Event, EventDecodeError, from_dict, to_dict
from domain.kernel import exchange_from_snapshot, exchange_from_snapshot_text, make_exchange

EVENT_NAMESPACE = uuid.UUID("5b0e7c8e-59f4-4d43-a0a4-5f6a1c1e7a10")
STREAM_NAMESPACE = uuid.UUID("0c7d1f2a-8a8f-4f55-9f0e-3d2b6c9e4b21")
log = logging.getLogger(__name__)
_EVENT_NS = EVENT_NAMESPACE.bytes
_STREAM_NS = STREAM_NAMESPACE.bytes


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
        return any(
            type(e).__name__ in ("OrderRejected", "CommandRejected", "AlertRejected")
            for e in self.events
        )


# -- the envelope: canonical JSON payloads, deterministic ids, stream keys ----------------------
#
# These run once per event on the sequencer's hot path, so each is specialised per event class
# once (field order, constant keys, where the stream key comes from). The slow reference
# definitions (`canonical_json`, `stream_key`, `uuid.uuid5`) stay the specification; the
# fast paths must give byte-identical results (tests/integration/test_core_envelope.py).

_esc = json.encoder.encode_basestring_ascii  # what json.dumps(ensure_ascii=True) uses
_int_repr = int.__repr__


def canonical_json(event: Event) -> bytes:
    """The reference payload: sorted keys, no spaces, ASCII-escaped, of `to_dict(event)`."""
    return json.dumps(to_dict(event), separators=(",", ":"), sort_keys=True).encode()


def _slow_value(value: object) -> str:
    """JSON text of one field, exactly as `to_dict` + `json.dumps` would write it."""
    if isinstance(value, Enum):
        return str(_esc(str(value.value)))
    if isinstance(value, Decimal):
        return str(_esc(str(value)))
    if isinstance(value, float):
        raise TypeError("floats are never serialized")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return str(_esc(value))
    if isinstance(value, int):
        return _int_repr(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


_VALUE_TEXT: dict[type, Callable[[Any], str]] = {}


def _value_text_for(kind: type) -> Callable[[Any], str]:
    text = _VALUE_TEXT.get(kind)
    if text is None:
        if issubclass(kind, Enum):
            table = {member: _slow_value(member) for member in kind}
            text = table.__getitem__
        elif kind is bool:
            text = {True: "true", False: "false"}.__getitem__
        else:
            text = _slow_value
        _VALUE_TEXT[kind] = text
    return text


class _Layout:
    """One event class's canonical JSON: text between the values, and which attribute goes where."""

    __slots__ = ("get", "prefixes", "tail")

    def __init__(self, cls: type[Event]) -> None:
        names = [f.name for f in dataclasses.fields(cls)]
        constants = {
            key: _slow_value(getattr(cls, key))
            for key in ("event_type", "schema_version")
            if key not in names
        }
        prefixes: list[str] = []
        attrs: list[str] = []
        pending = "{"
        for i, key in enumerate(sorted([*names, *constants])):
            pending += ("," if i else "") + _esc(key) + ":"
            if key in constants:
                pending += constants[key]
            else:
                prefixes.append(pending)
                attrs.append(key)
                pending = ""
        self.tail = pending + "}"
        self.prefixes = tuple(prefixes)
        getter = operator.attrgetter(*attrs)
        self.get: Callable[[Event], tuple[Any, ...]] = (
            getter if len(attrs) > 1 else (lambda event: (getter(event),))
        )


_LAYOUTS: dict[type, _Layout] = {}


def encode_payload(event: Event) -> bytes:
    """`canonical_json(event)`, written directly from the event's fields (no dict, no sort)."""
    layout = _LAYOUTS.get(type(event))
    if layout is None:
        layout = _LAYOUTS[type(event)] = _Layout(type(event))
    parts: list[str] = []
    append = parts.append
    for prefix, value in zip(layout.prefixes, layout.get(event), strict=True):
        append(prefix)
        kind = type(value)
        if kind is str:
            append(_esc(value))
        elif kind is int:
            append(_int_repr(value))
        else:
            append(_value_text_for(kind)(value))
    append(layout.tail)
    return "".join(parts).encode()


def decode_payload(payload: bytes) -> Event:
    return from_dict(json.loads(payload))


_UUID5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET = (5 << 76) | (0x8000 << 48)
_new_object = object.__new__
_make_tuple = tuple.__new__
_set_slot = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an enum member lookup is slow on Python 3.11


def uuid5(namespace: bytes, name: str) -> uuid.UUID:
    """`uuid.uuid5(UUID(bytes=namespace), name)` without its argument checks (same value)."""
    digest = hashlib.sha1(namespace + name.encode()).digest()  # RFC 4122 v5 names sha1
    value = int.from_bytes(digest[:16]) & _UUID5_CLEAR | _UUID5_SET
    made = _new_object(uuid.UUID)
    _set_slot(made, "int", value)
    _set_slot(made, "is_safe", _UNKNOWN_SAFETY)
    return made


_OWNERS = (
    ("alert_id", "alert"),  # only alert events have one: the exchange's keys are unchanged
    ("order_id", "order"),
    ("account_id", "account"),
    ("symbol", "instrument"),
)


def stream_key(event: Event) -> str:
    """The entity an event belongs to: an order, a symbol's trades, an account, an instrument."""
    name = type(event).__name__
    if name == "TradeExecuted":
        return f"trades:{getattr(event, 'symbol')}"  # noqa: B009
    if name == "CommandRejected":
        return f"rejections:{getattr(event, 'subject', '')}"
    for attr, prefix in _OWNERS:
        value = getattr(event, attr, None)
        if value:
            return f"{prefix}:{value}"
    return f"misc:{name}"


def _stream_key_for(cls: type[Event]) -> Callable[[Event], str]:
    """`stream_key` specialised to one class: only the owner attributes it actually has."""
    name = cls.__name__
    if name in ("TradeExecuted", "CommandRejected"):
        return stream_key
    fields = {f.name for f in dataclasses.fields(cls)}
    owners = tuple((attr, prefix) for attr, prefix in _OWNERS if attr in fields)
    fallback = f"misc:{name}"

    def keyed(event: Event) -> str:
        for attr, prefix in owners:
            value = getattr(event, attr)
            if value:
                return f"{prefix}:{value}"
        return fallback

    return keyed


_STREAM_KEYS: dict[type, Callable[[Event], str]] = {}


def fast_stream_key(event: Event) -> str:
    key_of = _STREAM_KEYS.get(type(event))
    if key_of is None:
        key_of = _STREAM_KEYS[type(event)] = _stream_key_for(type(event))
    return key_of(event)


class Streams:
    """Per-stream version counters (the eventsourcing layout's originator versions)."""

    _ID_CACHE_LIMIT = 100_000  # stream key -> uuid5; order streams are short-lived

    def __init__(self, versions: dict[str, int] | None = None) -> None:
        self.versions: dict[str, int] = dict(versions or {})
        self._ids: dict[str, uuid.UUID] = {}

    def stream_id(self, key: str) -> uuid.UUID:
        made = self._ids.get(key)
        if made is None:
            if len(self._ids) >= self._ID_CACHE_LIMIT:
                self._ids.clear()
            made = self._ids[key] = uuid5(_STREAM_NS, key)
        return made

    def envelope(self, event: Event, index: int, payload: bytes | None = None) -> NewEvent:
        """``payload``: the event's canonical JSON when the decider already made it."""
        key = fast_stream_key(event)
        versions = self.versions
        version = versions.get(key, 0) + 1
        versions[key] = version
        command_id = event.command_id
        stream_id = self._ids.get(key)
        if stream_id is None:
            stream_id = self.stream_id(key)
        # tuple.__new__ is NewEvent(...) without the generated __new__'s Python frame.
        return _make_tuple(
            NewEvent,
            (
                uuid5(_EVENT_NS, f"{command_id}/{index}"),
                stream_id,
                version,
                event.event_type,
                event.schema_version,
                encode_payload(event) if payload is None else payload,
                event.timestamp_ns,
                command_id,
                event.correlation_id,
            ),
        )

    def observe(self, event: Event, version: int) -> None:
        """Replay: versions are rebuilt from the log itself."""
        self.versions[fast_stream_key(event)] = version


_Waiter = asyncio.Future[CommandResult]
_Decided = list[tuple[_Waiter, Command, tuple[Event, ...], bool]]


@dataclass(slots=True)
class CoreStats:
    """Where the sequencer's time goes (monotonic seconds), for benchmarks and metrics."""

    batches: int = 0
    commands: int = 0
    events: int = 0
    deciding: float = 0.0  # handle + envelopes, on the event loop
    appending: float = 0.0  # from handing a batch to the store until COMMIT returned
    snapshotting: float = 0.0  # the sequencer held up capturing state for snapshots
    snapshots: int = 0  # snapshots stored
    recovering: float = 0.0


@dataclass(slots=True)
class _Commit:
    """A decided batch on its way to the log; `task` yields None or why the commit failed."""

    decided: _Decided
    task: asyncio.Task[BaseException | None]


class Core:
    """The single writer. `submit` is the in-process async API the gateway calls."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_batch: int = 2_000,
        split_above: int = 64,
        snapshot_every: int = 500_000,
        on_commit: Callable[[list[RecordedEvent]], None] | None = None,
        fork_snapshots: bool | None = None,
    ) -> None:
        self.store = store
        # Capture snapshots in a forked copy of the process (see `_begin_snapshot`).
        self.fork_snapshots = _CAN_FORK if fork_snapshots is None else fork_snapshots
        self.max_batch = max_batch
        self.split_above = split_above  # see `_take`
        self.snapshot_every = snapshot_every
        self.on_commit = on_commit
        self.exchange = make_exchange()
        # Price alerts: a small pure-Python decider beside the exchange, in the same log.
        self.alerts = Alerts()
        self._market: KnownMarket | None = None  # what alerts ask of the exchange, made lazily
        self.streams = Streams()
        self.position = 0
        self._last_snapshot = 0
        self._queue: deque[tuple[Command, _Waiter]] = deque()
        self._wakeup = asyncio.Event()
        self._inflight: _Commit | None = None
        self._at_rest: list[Callable[[], None]] = []  # see `call_at_rest`
        # decided while `_inflight` commits: `_commit` starts it once its append is done
        self._next: tuple[_Decided, list[NewEvent]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.fatal: Exception | None = None
        self.stats = CoreStats()
        self.snapshot_error: Exception | None = None  # the last snapshot that could not be saved
        self._snapshotting: asyncio.Task[Snapshot] | None = None  # being written

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self, holder: str | None = None, *, standby: bool = False) -> None:
        """Become the writer (or wait as a standby), rebuild state from the log, then serve."""
        for path in remove_orphaned_snapshot_files():
            log.warning("removed %s, left by a core killed while writing a snapshot", path)
        await self.store.acquire_writer(holder or "core", wait=standby)
        await self.recover()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="tradecore-sequencer")

    async def stop(self) -> None:
        """Stop deciding; the batch being committed is still answered, queued commands are not."""
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                pass  # already recorded in self.fatal
            await asyncio.gather(task, return_exceptions=True)
        if self._inflight is not None:
            await asyncio.gather(self._inflight.task, return_exceptions=True)
            self._inflight = None
        self._fail_queued(CoreStopped("the core stopped before deciding this command"))
        writing = self._snapshotting
        if writing is not None:  # let it land: it shortens the next start
            try:
                await asyncio.wait_for(asyncio.shield(writing), timeout=60)
            except (TimeoutError, asyncio.CancelledError):
                writing.cancel()
            except Exception:
                pass  # recorded in self.snapshot_error
            await asyncio.gather(writing, return_exceptions=True)

    async def recover(self) -> None:
        """State = latest snapshot + every event after it (or the whole log)."""
        started = perf_counter()
        try:
            await self._recover()
        finally:
            self.stats.recovering += perf_counter() - started

    async def _recover(self) -> None:
        snapshot = await self.store.latest_snapshot()
        self.alerts, self._market = Alerts(), None
        if snapshot is None:
            self.exchange, self.streams, self.position = make_exchange(), Streams(), 0
        else:
            snapshot = self._take_alerts(snapshot)
            split = snapshot.split_text()
            if split is not None:
                exchange_text, versions = split
                self.exchange = exchange_from_snapshot_text(exchange_text)
                self.streams = Streams(versions)
            else:
                state = snapshot.loaded_state()
                self.exchange = exchange_from_snapshot(state["exchange"])
                self.streams = Streams(state["streams"])
                if "alerts" in state:
                    self.alerts = Alerts.from_snapshot(state["alerts"])
            self.position = snapshot.position
        self._last_snapshot = self.position
        await self.replay_tail()

    def _take_alerts(self, snapshot: Snapshot) -> Snapshot:
        """Load the alerts of a snapshot written as text (``{"alerts":…,"exchange":…}``) and
        return the rest in the layout the exchange reads. Snapshots without alerts (all
        those written before alerts existed) are returned as they are."""
        text = snapshot.text
        if snapshot.state or text is None or not text.startswith(_ALERTS_HEAD):
            return snapshot
        data, end = _JSON.raw_decode(text, len(_ALERTS_HEAD))
        self.alerts = Alerts.from_snapshot(data)
        return dataclasses.replace(snapshot, text="{" + text[end + 1 :])

    def _apply_other(self, payload: bytes) -> str:
        """Replay of a payload the kernel does not know: an alert event (else the error)."""
        event = decode_payload(payload)
        if not isinstance(event, ALERT_EVENT_TYPES):
            raise EventDecodeError(f"the exchange refused a {type(event).__name__} payload")
        self.alerts.apply(event)
        return fast_stream_key(event)

    def _apply_event(self, event: Event) -> None:
        if isinstance(event, ALERT_EVENT_TYPES):
            self.alerts.apply(event)
        else:
            self.exchange.apply(event)

    async def replay_tail(self, batch: int = 20_000, upto: int | None = None) -> int:
        """Apply every logged event after the current position (up to `upto`).

        Reads only what replay needs (position, stream version, payload) and fetches the next
        page while this one is decoded and applied.
        """
        read_pages = getattr(self.store, "read_payloads", None)
        if read_pages is None:
            return await self._replay_records(batch, upto)
        replayed = 0
        observe = self.streams.versions
        # The Rust kernel parses and applies a stored payload without building Python events.
        apply_payload = getattr(self.exchange, "apply_payload", None)
        read_blobs = getattr(self.store, "read_payload_pages", None)
        if apply_payload is not None and read_blobs is not None:
            async for last, versions, payloads in read_blobs(self.position, upto, batch):
                for version, payload in zip(versions, payloads, strict=True):
                    try:
                        observe[apply_payload(payload)] = version
                    except EventDecodeError:  # alert events are not the kernel's
                        observe[self._apply_other(payload)] = version
                self.position = last
                replayed += len(payloads)
            return replayed
        apply, loads, decode = self._apply_event, json.loads, from_dict
        async for page in read_pages(self.position, upto, batch):
            if apply_payload is not None:
                for _, version, payload in page:
                    try:
                        observe[apply_payload(payload)] = version
                    except EventDecodeError:  # alert events are not the kernel's
                        observe[self._apply_other(payload)] = version
            else:
                for _, version, payload in page:
                    event = decode(loads(payload))
                    apply(event)
                    observe[fast_stream_key(event)] = version
            self.position = page[-1][0]
            replayed += len(page)
        return replayed

    async def _replay_records(self, batch: int, upto: int | None) -> int:
        """The same, through the EventStore port's `read` (any store)."""
        replayed = 0
        while upto is None or self.position < upto:
            limit = batch if upto is None else min(batch, upto - self.position)
            rows = await self.store.read(self.position, limit)
            if not rows:
                break
            for row in rows:
                event = decode_payload(row.event.payload)
                self._apply_event(event)
                self.streams.observe(event, row.event.stream_version)
                self.position = row.position
            replayed += len(rows)
        return replayed

    # -- the API ---------------------------------------------------------------------------------

    async def submit(self, command: Command) -> CommandResult:
        """Decide `command`; returns after its events are committed (or raises)."""
        if self._task is None or self._stopping:
            raise CoreStopped("the core is not running")
        future: _Waiter = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        if not self._wakeup.is_set():
            self._wakeup.set()
        return await future

    def state_hash(self) -> str:
        """The exchange's state hash; with alerts, combined with theirs (see `combined_hash`)."""
        return combined_hash(self.exchange.state_hash(), self.alerts)

    # -- the sequencer ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                inflight = self._inflight
                if inflight is not None and inflight.task.done():
                    self._inflight = None
                    await self._settle(inflight, None)
                    continue
                if self._at_rest:
                    if inflight is not None:  # let it land: memory = the committed log
                        await asyncio.wait((inflight.task,))
                        continue  # settled at the top of the loop
                    self._run_at_rest()
                    continue
                if not self._queue or self._stopping:
                    if self._stopping:
                        if inflight is not None:
                            await asyncio.wait((inflight.task,))
                            continue
                        return
                    if inflight is None and self._snapshot_due():
                        self._snapshot_in_loop()
                        continue  # commands may have arrived meanwhile
                    self._wakeup.clear()
                    if not self._queue:
                        await self._wakeup.wait()
                    continue
                if self._snapshot_due():
                    # Memory equals the committed log only with no batch in flight: let the
                    # one in flight land (a commit's time), then capture and go on.
                    if inflight is not None:
                        await asyncio.wait((inflight.task,))
                        continue  # settled at the top of the loop
                    self._snapshot_in_loop()
                    continue
                batch = self._take(inflight is None)
                started = perf_counter()
                try:
                    decided, envelopes = self._decide(batch)
                except Exception as exc:
                    # A command the domain cannot decide: the log is the truth, so settle
                    # what is in flight, rebuild, and fail this batch.
                    if inflight is not None:
                        await asyncio.wait((inflight.task,))
                        self._inflight = None
                        await self._settle(inflight, None)
                    await self.recover()
                    self._fail(batch, exc)
                    continue
                stats = self.stats
                stats.deciding += perf_counter() - started
                stats.batches += 1
                stats.commands += len(batch)
                stats.events += len(envelopes)
                if inflight is not None:
                    # Decided while the previous batch was committing; written only after it.
                    # The previous commit starts this one as soon as its own append is done,
                    # before it answers its callers (`_commit`): otherwise the store would
                    # idle while this thread wakes every caller of the previous batch.
                    self._next = (decided, envelopes)
                    try:
                        await asyncio.wait((inflight.task,))
                    finally:
                        self._next = None
                    chained = self._inflight if self._inflight is not inflight else None
                    self._inflight = chained
                    if await self._settle(inflight, decided):  # failed: nothing was chained
                        continue
                    if chained is not None:
                        await asyncio.sleep(0)
                        continue
                self._inflight = _Commit(
                    decided, asyncio.create_task(self._commit(decided, envelopes))
                )
                # Let the commit send its batch before deciding the next one on this thread.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._fail_queued(CoreStopped("the core stopped before deciding this command"))
            raise
        except Exception as exc:
            # Fenced, or the log cannot be read back: deciding on would risk a wrong state.
            self._stopping = True
            self.fatal = exc
            self._fail_queued(CoreStopped(f"the core stopped: {exc}"))
            raise

    def _take(self, store_idle: bool) -> list[tuple[Command, _Waiter]]:
        """The next batch, in arrival order. While the store is idle, a long queue is split:
        the first half is handed to the store as soon as it is decided and the second half
        is decided while that commits. Without the split, clients that all wait on one
        commit come back together and the store idles while their batch is decided (closed
        loop: decide and commit would never overlap)."""
        queue = self._queue
        limit = self.max_batch
        if store_idle and len(queue) >= 2 * self.split_above:
            limit = min(limit, (len(queue) + 1) // 2)
        if len(queue) <= limit:
            batch = list(queue)
            queue.clear()
            return batch
        return [queue.popleft() for _ in range(limit)]

    def _decide(self, batch: Sequence[tuple[Command, _Waiter]]) -> tuple[_Decided, list[NewEvent]]:
        decided: _Decided = []
        envelopes: list[NewEvent] = []
        handle, envelope = self.exchange.handle, self.streams.envelope
        # The Rust kernel also writes each event's canonical JSON (byte-identical, tested).
        handle_encoded = getattr(self.exchange, "handle_encoded", None)
        for command, future in batch:
            kind = type(command)
            if kind in _ALERT_COMMANDS:
                outcome, payloads = self.alerts.handle(command, self._alert_market()), None
            elif handle_encoded is None:
                outcome, payloads = handle(command), None
            else:
                outcome, payloads = handle_encoded(command)
            if kind in _DIRECTORY_COMMANDS and self._market is not None:
                self._market.observe(outcome.events)
            events = outcome.events
            decided.append((future, command, events, outcome.duplicate))
            if not outcome.duplicate:
                for i, event in enumerate(events):
                    envelopes.append(envelope(event, i, None if payloads is None else payloads[i]))
        return decided, envelopes

    def _alert_market(self) -> KnownMarket:
        """Accounts and tick sizes for the alerts, read from the exchange's views once (they
        are copies with the kernel) and then kept up to date from the decided events."""
        market = self._market
        if market is None:
            exchange = self.exchange
            ticks = {str(s): i.tick_size for s, i in exchange.instruments.items()}
            market = KnownMarket(exchange.accounts, ticks, exchange.reference_price)
            self._market = market
        return market

    async def _commit(self, decided: _Decided, envelopes: list[NewEvent]) -> BaseException | None:
        """Append one decided batch and answer its callers; on failure return why, answer none."""
        started = perf_counter()
        try:
            recorded = await self.store.append(envelopes) if envelopes else []
        except Exception as exc:
            return exc
        finally:
            self.stats.appending += perf_counter() - started
            self._wakeup.set()
        if recorded:
            self.position = recorded[-1].position
        following = self._next
        if following is not None:
            # The batch decided on top of this one goes to the store now: its first step
            # is queued ahead of the wake-ups of this batch's callers.
            self._next = None
            self._inflight = _Commit(following[0], asyncio.create_task(self._commit(*following)))
        if recorded and self.on_commit is not None:
            self.on_commit(recorded)
        # Positions are consecutive within a commit, in the order the events were decided.
        at = recorded[0].position if recorded else 0
        for future, command, events, duplicate in decided:
            if duplicate:
                positions: tuple[int, ...] = ()
            else:
                count = len(events)
                positions = tuple(range(at, at + count))
                at += count
            if not future.done():
                future.set_result(CommandResult(command.command_id, events, positions, duplicate))
        return None

    async def _settle(self, commit: _Commit, later: _Decided | None) -> bool:
        """Look at a finished commit; True if it failed (`later`, decided on top, fails too)."""
        exc = commit.task.result()
        if exc is None:
            return False
        failed = [future for future, *_ in commit.decided]
        failed += [future for future, *_ in later or ()]
        if isinstance(exc, WriterFenced):
            for future in failed:
                if not future.done():
                    future.set_exception(exc)
            raise exc  # another core owns the log now: this one must stop deciding
        # The log is the truth: undo the batch in memory before anyone hears back.
        await self.recover()
        for future in failed:
            if not future.done():
                future.set_exception(exc)
        return True

    def call_at_rest(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the sequencer once no batch is in flight, before the next is decided:
        the exchange in memory then equals the committed log (e.g. to seed a replica)."""
        self._at_rest.append(fn)
        self._wakeup.set()

    def _run_at_rest(self) -> None:
        calls, self._at_rest = self._at_rest, []
        for fn in calls:
            try:
                fn()
            except Exception:
                log.exception("a call at rest failed; the core decides on")

    def _fail(self, batch: Sequence[tuple[Command, _Waiter]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _fail_queued(self, exc: BaseException) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(exc)

    def _snapshot_in_loop(self) -> None:
        """Start a snapshot between batches; it is written while the sequencer goes on. A
        snapshot only shortens recovery: if one cannot be written (e.g. the state is over
        PostgreSQL's size limit), keep deciding, say so loudly, and retry after another
        `snapshot_every` events."""
        try:
            self._begin_snapshot()
        except Exception as exc:
            self._snapshot_failed(self.position, exc)

    def _snapshot_failed(self, position: int, exc: BaseException) -> None:
        self.snapshot_error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
        log.error("snapshot at position %d failed, recovery replays more: %s", position, exc)

    def _snapshot_due(self) -> bool:
        if self._snapshotting is not None and not self._snapshotting.done():
            return False  # one at a time
        return self.position - self._last_snapshot >= self.snapshot_every

    async def snapshot(self) -> Snapshot:
        """Snapshot the state as it is now and wait until it is stored. Call it when memory
        equals the committed log (no batch in flight), as the sequencer does."""
        running = self._snapshotting
        if running is not None and not running.done():
            await asyncio.gather(running, return_exceptions=True)
        return await self._begin_snapshot()

    def _begin_snapshot(self) -> asyncio.Task[Snapshot]:
        """Capture the state now; hash, write and store it in the background.

        Serialising a large state takes seconds (about 1.4 s in the kernel and `json` for
        300,000 orders), during which no command could be decided. So the state is captured
        by forking: the child is a copy-on-write image of this process as of now, writes the
        snapshot's text and hash to a file and exits, and this process goes on deciding at
        once (the fork itself takes milliseconds); a task then stores the file. Without fork
        (another OS), the text is made here and only the storing runs in the background."""
        started = perf_counter()
        position = self._last_snapshot = self.position
        child = _fork(self._snapshot_text) if self.fork_snapshots else None
        made = None if child is not None else self._snapshot_text()
        self.stats.snapshotting += perf_counter() - started
        task = asyncio.create_task(self._store_snapshot(position, child, made))
        self._snapshotting = task
        task.add_done_callback(self._snapshot_done)
        return task

    def _snapshot_done(self, task: asyncio.Task[Snapshot]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._snapshot_failed(self._last_snapshot, exc)
        else:
            self.stats.snapshots += 1
            self.snapshot_error = None

    async def _store_snapshot(
        self, position: int, child: _Child | None, made: tuple[str, str] | None
    ) -> Snapshot:
        if child is not None:
            made = await child.result()
        assert made is not None
        text, state_hash = made
        snap = Snapshot(position, state_hash, {}, text)
        await self.store.save_snapshot(snap)
        return snap

    def _snapshot_text(self) -> tuple[str, str]:
        """The whole state as JSON text (alerts, exchange, stream versions) and its hash."""
        # Alerts go first, and only when there are any: a snapshot without them keeps the
        # layout (and hash) it had before alerts existed, so older cores can still read it.
        alerts = self.alerts
        snapshot_json = getattr(self.exchange, "snapshot_json", None)
        if snapshot_json is not None:
            # The kernel writes the canonical JSON itself: hash and store that text as it is.
            text = snapshot_json()
            exchange_hash = _sha256_hex(text)
        else:
            exchange = self.exchange.snapshot()
            exchange_hash = snapshot_hash(exchange)
            text = json.dumps(exchange, separators=(",", ":"))
        head = _ALERTS_HEAD + alerts.snapshot_json() + "," if len(alerts) else "{"
        streams = json.dumps(self.streams.versions)
        whole = head + '"exchange":' + text + ',"streams":' + streams + "}"
        return whole, combined_hash(exchange_hash, alerts)


_CAN_FORK = sys.platform == "linux" and hasattr(os, "fork")
_SNAPSHOT_FILE = "tradecore-snapshot-"  # + the writing core's pid + "-…": see `_fork`


def remove_orphaned_snapshot_files(directory: str | None = None) -> list[str]:
    """Delete snapshot files left in the temporary directory by a core that was killed
    (SIGKILL) while its snapshot child ran; returns their paths. Files of running cores stay."""
    removed = []
    root = directory or tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            if not (name.startswith(_SNAPSHOT_FILE) and name.endswith(".json")):
                continue
            pid = name[len(_SNAPSHOT_FILE) :].partition("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(root, name))
                    removed.append(os.path.join(root, name))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(slots=True)
class _Child:
    """A forked process writing a snapshot's hash and text to `path`."""

    pid: int
    path: str

    async def result(self) -> tuple[str, str]:
        """The (text, state hash) the child wrote; the child is killed if this is cancelled."""
        try:
            _, status = await asyncio.to_thread(os.waitpid, self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise RuntimeError(f"the snapshot process {self.pid} failed (exit code {code})")
            with open(self.path, encoding="utf-8") as f:
                written = await asyncio.to_thread(f.read)
            state_hash, _, text = written.partition("\n")
            return text, state_hash
        except BaseException:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _fork(build: Callable[[], tuple[str, str]]) -> _Child | None:
    """Run `build` in a forked child that writes its result to a file; None if fork fails.

    The child touches nothing it shares with this process (sockets, the event loop): it only
    reads memory, writes its own file and leaves with `os._exit`, so no finaliser, atexit
    hook or buffered output of the parent runs twice."""
    fd, path = tempfile.mkstemp(prefix=f"{_SNAPSHOT_FILE}{os.getpid()}-", suffix=".json")
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        log.warning("snapshot: fork failed (%s); serialising in process", exc)
        return None
    if pid == 0:  # pragma: no cover - the child (its work is checked through the file)
        code = 1
        try:
            gc.disable()  # no collection may run a finaliser that touches a shared socket
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which
            # waits for this snapshot when it stops (`Core.stop`)
            text, state_hash = build()
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(state_hash)
                out.write("\n")
                out.write(text)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(fd)
    return _Child(pid, path)


_ALERTS_HEAD = '{"alerts":'
_JSON = json.JSONDecoder()
_ALERT_COMMANDS = frozenset(ALERT_COMMANDS)
_DIRECTORY_COMMANDS = frozenset((OpenAccount, ListInstrument))  # they add accounts, symbols


def combined_hash(exchange_hash: str, alerts: Alerts) -> str:
    """The core's state hash: the exchange's alone while there are no alerts (so every state
    hash recorded before alerts existed still holds), else sha256 over both hashes."""
    if not len(alerts):
        return exchange_hash
    both = f"{exchange_hash}:{alerts.state_hash()}"
    return hashlib.sha256(both.encode()).hexdigest()


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot_hash(exchange_snapshot: dict[str, Any]) -> str:
    """``Exchange.state_hash()`` computed from a snapshot dict already taken."""
    canonical = json.dumps(exchange_snapshot, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
