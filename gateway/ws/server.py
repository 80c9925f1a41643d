"""The /ws endpoint: one connection's subscriptions, commands, heartbeats and outbox.

Every connection has one bounded outbox, drained by its own writer task. Live messages
arrive from the process's fan-out feed (`LiveChannels`) and are forwarded as the JSON text
the publisher wrote; while an update of `book.*` or `ticker.*` is still waiting in the outbox,
the next one for that channel is merged into it (conflation: absolute level values, or the
newest ticker), with `first_seq` naming the first update it replaces. A connection whose
outbox still grows past its limit is closed with code 4008 and a reason. Commands go through
the REST handlers of gateway.routes.orders, so both doors decide the same way. docs/websocket.md
is the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi import APIRouter, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from commands.core import CoreStopped
from gateway import jsontext
from gateway.body import check_json
from gateway.commanding import CommandHeaders
from gateway.deps import Principal
from gateway.errors import ApiError, validation_error
from gateway.ports import ServiceUnavailable
from gateway.routes import orders as order_routes
from gateway.schemas import ID_PATTERN, SYMBOL_PATTERN, OrderAmend, OrderCreate
from gateway.services import GatewayServices
from gateway.ws.channels import (
    CONFLATED_KINDS,
    PRIVATE_KINDS,
    Channel,
    LiveChannels,
    parse_channel,
)
from gateway.ws.frames import FrameCache, RawSocket, raw_socket, text_frame

router = APIRouter()

CLOSE_AUTH = 4001  # invalid, expired or revoked token
CLOSE_SLOW = 4008  # slow consumer
CLOSE_IDLE = 4009  # no heartbeat from the client
CLOSE_GOING_AWAY = 1001
_ID_RE = re.compile(ID_PATTERN)
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
_HEADER_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True, slots=True)
class WsConfig:
    heartbeat_s: float = 15.0  # the server sends a heartbeat this often
    idle_timeout_s: float = 45.0  # ... and closes a client silent for this long
    max_message_bytes: int = 16 * 1024  # a client message larger than this is refused
    max_subscriptions: int = 64
    max_outbox: int = 1_000  # messages waiting to be sent before the client is cut off
    max_outbox_bytes: int = 4 * 1024 * 1024
    max_inflight: int = 256  # commands of one connection being decided at once
    close_timeout_s: float = 5.0
    # False in a market-data process (no core beside it): command ops are refused with a
    # reason naming where to send them; everything else is served alike
    commands: bool = True


@dataclass
class HubStats:
    connections: int = 0
    accepted: int = 0
    slow_disconnects: int = 0
    conflated: int = 0
    refused: int = 0  # client messages refused (malformed, oversize, forbidden...)


class LiveHub:
    """The WebSocket side of one gateway process: its connections and their limits.

    The hub, not each connection, listens to the feed: one `_Fanout` per channel holds the
    process's subscribers of it, so a live message costs the feed one delivery however many
    sockets follow the channel, and the messages of one loop turn reach each steady
    subscriber as one shared byte string in one transport write."""

    def __init__(
        self, feed: LiveChannels, services: GatewayServices, config: WsConfig | None = None
    ) -> None:
        self.feed = feed
        self.services = services
        self.config = config or WsConfig()
        self.stats = HubStats()
        self.connections: set[Connection] = set()
        self.fanouts: dict[str, _Fanout] = {}
        self._dirty: list[Connection] = []  # connections with frames to write this loop turn
        self._due: list[_Fanout] = []  # channels with messages to hand out this loop turn
        self._flushing = False
        self.freezer = ConnectionFreezer()

    async def join(self, connection: Connection, sub: _Subscription) -> None:
        """`connection` follows `sub`'s channel from now on; returns once messages flow."""
        name = sub.channel.name
        fanout = self.fanouts.get(name)
        if fanout is None:
            fanout = self.fanouts[name] = _Fanout(self, name)
        fanout.members[connection] = sub
        await self.feed.listen(name, fanout)

    async def leave(self, connection: Connection, name: str) -> None:
        fanout = self.fanouts.get(name)
        if fanout is None or fanout.members.pop(connection, None) is None:
            return
        if not fanout.members:
            del self.fanouts[name]
            await self.feed.unlisten(name, fanout)

    def schedule(self, connection: Connection) -> None:
        """Write `connection`'s outbox at the end of this loop turn, with everything else
        queued for it meanwhile: one transport write per connection per turn."""
        self._wake()
        self._dirty.append(connection)

    def _fanout_due(self, fanout: _Fanout) -> None:
        self._wake()
        self._due.append(fanout)

    def _wake(self) -> None:
        """One `_flush` at the end of this loop turn for whatever gets queued meanwhile."""
        if not self._dirty and not self._due and not self._flushing:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        # Channels first: a subscriber that cannot take the shared bytes gets the messages
        # in its outbox, written below in the same turn.
        self._flushing = True
        try:
            due, self._due = self._due, []
            for fanout in due:
                if fanout.flush():  # a pass left to finish, or another to start
                    self._due.append(fanout)
            dirty, self._dirty = self._dirty, []
            for connection in dirty:
                connection.flush()
        finally:
            self._flushing = False
        if self._due or self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)

    async def close_all(self) -> None:
        """Server shutdown: every client is told to go away (code 1001)."""
        await asyncio.gather(
            *(c.close(CLOSE_GOING_AWAY, "server_shutdown") for c in list(self.connections)),
            return_exceptions=True,
        )


FANOUT_CHUNK = 500  # subscribers written per loop turn: the core and the feed run between


class ConnectionFreezer:
    """Keeps thousands of long-lived connections out of the cyclic collector's walks.

    Each connection holds ~140 objects the collector tracks (its tasks, their coroutines and
    contexts, the protocol's buffers), alive as long as the client. With 10,000 subscribers
    that is 1.4 M objects, and a collection of an older generation walked them all: 355-394
    ms stalls of the whole gateway, order entry included, during and after a storm of
    connects (docs/benchmarks.md, session 6). Every `every` connections accepted, the live
    objects are frozen (`gc.freeze`: the collector ignores them; freeing by reference count
    goes on). Cycles among frozen objects that die later wait: once the connections fall
    below half of what they were at the last freeze, everything is unfrozen, and the
    collector's next full pass takes them. The core freezes its recovered state the same way
    (`tradecore.market.CoreService.start`)."""

    def __init__(self, every: int = 1_000) -> None:
        self.every = every
        self._accepted = 0  # since the last freeze
        self._peak = 0  # connections at the last freeze

    def accepted(self, connections: int) -> None:
        self._accepted += 1
        if self._accepted >= self.every:
            self._accepted = 0
            self._peak = connections
            gc.freeze()

    def closed(self, connections: int) -> None:
        if self._peak and connections < self._peak // 2:
            self._peak = 0
            gc.unfreeze()


class _Fanout:
    """One channel's subscribers in this process: the feed's listener for the channel.

    Messages are collected, then handed out in a pass over the subscribers. A subscriber in
    the steady state (raw transport writable, nothing queued, no snapshot being read, a
    channel that is never conflated, and its last seq before the batch) gets the batch's
    frames as one byte string shared by all of them: one `write`, no per-message work. Any
    other subscriber gets each message through `Connection.deliver`, as before.

    A pass writes `FANOUT_CHUNK` subscribers per loop turn, so a channel with thousands of
    subscribers never holds the loop (the core's commits, the feed) for a whole pass.
    Messages that arrive during a pass go out in the next one: the busier the channel, the
    more messages share one write (a system call each is the fan-out's floor: see
    bench/loopback_floor.py), and with a quiet channel a message goes out at once."""

    __slots__ = (
        "at",
        "batch",
        "first",
        "hub",
        "last",
        "members",
        "name",
        "pending",
        "queued",
        "shared",
        "todo",
    )

    def __init__(self, hub: LiveHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.members: dict[Connection, _Subscription] = {}
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.queued = False  # in the hub's list of channels to hand out
        # the pass in progress: its messages, their seq range, its subscribers, how far
        self.batch: list[tuple[str, dict[str, Any]]] = []
        self.first = self.last = 0
        self.shared: bytes | None = None
        self.todo: list[Connection] | None = None
        self.at = 0

    def deliver(self, channel: str, raw: str, message: dict[str, Any]) -> None:
        self.pending.append((raw, message))
        if not self.queued:
            self.queued = True
            self.hub._fanout_due(self)

    def reset(self, channel: str) -> None:
        for connection in list(self.members):
            connection.reset(channel)

    def flush(self) -> bool:
        """Write the next chunk of a pass (starting one if needed); True if work is left."""
        if self.todo is None:
            if not self.pending or not self.members:
                self.pending = []
                self.queued = False
                return False
            self.batch, self.pending = self.pending, []
            self.first, self.last = self.batch[0][1]["seq"], self.batch[-1][1]["seq"]
            self.shared = None
            self.todo, self.at = list(self.members), 0
        todo, members, batch, first, name = (
            self.todo,
            self.members,
            self.batch,
            self.first,
            self.name,
        )
        end = min(self.at + FANOUT_CHUNK, len(todo))
        for i in range(self.at, end):
            connection = todo[i]
            sub = members.get(connection)
            if sub is None:
                continue  # left during the pass
            raw = connection.raw
            if (
                raw is None
                or sub.conflate
                or sub.buffer is not None
                or sub.last_seq >= first
                or connection.outbox
                or connection.blocked
                or connection.closing is not None
                or not raw.writable.is_set()
                or not raw.open()
            ):
                for text, message in batch:
                    connection.deliver(name, text, message)
                continue
            shared = self.shared
            if shared is None:
                shared = self.shared = b"".join([text_frame(text) for text, _ in batch])
            raw.transport.write(shared)
            sub.last_seq = self.last
            if not raw.writable.is_set():  # paused by this write: wait for it to drain
                connection.blocked = True
                connection.wake.set()
        self.at = end
        if end < len(todo):
            return True
        self.todo, self.batch, self.shared = None, [], None
        if self.pending:
            return True
        self.queued = False
        return False


PATH = "/ws"


@router.websocket(PATH)
async def websocket_endpoint(websocket: WebSocket) -> None:
    """Live channels and order entry; the protocol is in docs/websocket.md."""
    hub: LiveHub = websocket.app.state.live
    await Connection(hub, websocket).serve()


class LiveLane:
    """`/ws` served in front of FastAPI (`gateway.app.GatewayApp.sockets`), as the order lane
    serves orders. A WebSocket connection lives as long as its client, and every layer its
    ASGI call passes through stays suspended on its stack all that time: FastAPI's error,
    telemetry and body-limit middleware, three exit stacks, the router, the route's solved
    dependencies. With 10,000 subscribers that was about 75 of the 213 objects the cyclic
    collector tracks per connection, walked by every collection of the older generations.
    The connection itself is the same `Connection` the route runs; any other scope (or a
    mounted app's `/ws`, with a root path) goes on to FastAPI."""

    def __init__(self, app: ASGIApp, hub: LiveHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH and not scope.get("root_path"):
            await Connection(self.hub, WebSocket(scope, receive=receive, send=send)).serve()
        else:
            await self.app(scope, receive, send)


class _Refusal(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(slots=True)
class _Item:
    """One outgoing message. Conflatable ones keep their parsed form to merge into."""

    channel: str | None
    text: str | None
    size: int
    message: dict[str, Any] | None = None
    first_seq: int = 0
    frame: bytes | None = None  # the text as a WebSocket frame, shared by every subscriber
    bids: dict[int, list[int]] | None = None
    asks: dict[int, list[int]] | None = None

    def merge(self, message: dict[str, Any]) -> None:
        assert self.message is not None
        if self.bids is None or self.asks is None:
            data = self.message["data"]
            self.bids = {row[0]: row for row in data.get("bids", ())}
            self.asks = {row[0]: row for row in data.get("asks", ())}
        if message["type"] == "delta":
            data = message["data"]
            self.bids.update((row[0], row) for row in data.get("bids", ()))
            self.asks.update((row[0], row) for row in data.get("asks", ()))
            self.message = {**message, "data": self.message["data"]}
        else:
            self.message = message
        self.text = None
        self.frame = None

    def render(self) -> str:
        if self.text is not None:
            return self.text
        assert self.message is not None
        out = dict(self.message)
        out["first_seq"] = self.first_seq
        if out.get("type") == "delta" and self.bids is not None and self.asks is not None:
            out["data"] = {
                "bids": [self.bids[p] for p in sorted(self.bids, reverse=True)],
                "asks": [self.asks[p] for p in sorted(self.asks)],
            }
        return _dumps(out)

    def wire(self) -> bytes:
        if self.frame is None:
            self.frame = text_frame(self.render())
        return self.frame


@dataclass(slots=True)
class _Subscription:
    channel: Channel
    last_seq: int = 0
    buffer: list[tuple[str, dict[str, Any]]] | None = None  # live messages during a snapshot
    conflate: bool = False
    snapshots: int = 0


@dataclass(slots=True)
class _Bucket:
    """Per-connection command rate: the REST per-user limit, kept in memory."""

    rate: float
    burst: float
    tokens: float
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float | None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


def _valid_ref(ref: Any) -> Any:
    """The client's `id`, echoed in answers: a short string or an integer, else None."""
    if isinstance(ref, str) and len(ref) <= 64:
        return ref
    if isinstance(ref, int) and not isinstance(ref, bool) and abs(ref) < 2**53:
        return ref
    return None


_dumps = jsontext.dumps
_frames = FrameCache()  # a live message's frame, built once for all its subscribers


class Connection:
    """One WebSocket client."""

    def __init__(self, hub: LiveHub, websocket: WebSocket) -> None:
        self.hub = hub
        self.ws = websocket
        self.config = hub.config
        self.services = hub.services
        self.principal: Principal | None = None
        self.subs: dict[str, _Subscription] = {}
        self.outbox: deque[_Item] = deque()
        self.unsent: dict[str, _Item] = {}  # the conflatable item waiting, per channel
        self.queued_bytes = 0
        self.blocked = False  # the writer is waiting for the client to read
        self.wake = asyncio.Event()
        self.raw: RawSocket | None = None  # frames straight to the transport (gateway.ws.frames)
        self.scheduled = False  # in the hub's list of connections to flush this turn
        self.last_received = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self.closed = asyncio.Event()
        self.admitted = asyncio.Event()  # a ?token= is checked: messages may be read
        self.inflight = asyncio.Semaphore(self.config.max_inflight)
        self.tasks: set[asyncio.Task[Any]] = set()
        cfg = self.services.config
        rate = cfg.rate_limit / max(cfg.rate_window_s, 1)
        self.bucket = _Bucket(rate=rate, burst=float(cfg.rate_limit), tokens=float(cfg.rate_limit))

    # -- life cycle -------------------------------------------------------------------------------

    async def serve(self) -> None:
        hub = self.hub
        await self.ws.accept()
        self.raw = raw_socket(self.ws)
        hub.connections.add(self)
        hub.stats.connections += 1
        hub.stats.accepted += 1
        hub.freezer.accepted(hub.stats.connections)
        writer = asyncio.create_task(self._write())
        beat = asyncio.create_task(self._beat())
        reader = asyncio.create_task(self._read())
        try:
            # A ?token= is checked before the first message is handled: a client may subscribe
            # to its private channels in the same breath as it connects.
            token = self.ws.query_params.get("token")
            if token is not None and not await self._authenticate(token, None):
                await self.close(CLOSE_AUTH, "invalid_token")
            else:
                self.admitted.set()
                self._control(
                    {
                        "type": "welcome",
                        "heartbeat_s": self.config.heartbeat_s,
                        "idle_timeout_s": self.config.idle_timeout_s,
                        "max_message_bytes": self.config.max_message_bytes,
                        "user": None if self.principal is None else self.principal.username,
                    }
                )
            closed = asyncio.create_task(self.closed.wait())
            await asyncio.wait((reader, closed), return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
        finally:
            for task in (reader, beat, writer, *self.tasks):
                task.cancel()
            await asyncio.gather(reader, beat, writer, *self.tasks, return_exceptions=True)
            for name in list(self.subs):
                with contextlib.suppress(Exception):
                    await hub.leave(self, name)
            self.subs.clear()
            self.outbox.clear()
            hub.connections.discard(self)
            hub.stats.connections -= 1
            hub.freezer.closed(hub.stats.connections)

    def fail(self, code: int, reason: str) -> None:
        """Close from synchronous code (the feed's dispatch): once, in a task."""
        if self.closing is None:
            self._spawn(self.close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """Drop what is queued, send the close frame (bounded wait), end the connection."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        if code == CLOSE_SLOW:
            self.hub.stats.slow_disconnects += 1
        self.outbox.clear()
        self.unsent.clear()
        self.wake.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason[:120]), self.config.close_timeout_s)
        self.closed.set()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- sending ----------------------------------------------------------------------------------

    def _push(self, item: _Item) -> None:
        if self.closing is not None:
            return
        self.outbox.append(item)
        self.queued_bytes += item.size
        config = self.config
        # A burst queued within one loop turn is not slowness: only a writer stuck in a send
        # (the client's TCP window is full) with a long queue behind it is. Bytes always count.
        behind = self.blocked and len(self.outbox) > config.max_outbox
        if behind or self.queued_bytes > config.max_outbox_bytes:
            self.fail(
                CLOSE_SLOW,
                f"slow_consumer: more than {config.max_outbox} messages or "
                f"{config.max_outbox_bytes} bytes waiting",
            )
            return
        if self.raw is None:
            self.wake.set()
        elif not self.scheduled and not self.blocked:
            self.scheduled = True
            self.hub.schedule(self)

    def _control(self, message: dict[str, Any]) -> None:
        text = _dumps(message)
        self._push(_Item(None, text, len(text)))

    def _error(
        self, ref: Any, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        self.hub.stats.refused += 1
        body: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            body["id"] = ref
        if details:
            body["details"] = details
        self._control(body)

    def flush(self) -> None:
        """Write every queued frame in one transport write (the hub calls this once per
        loop turn). While the transport is paused (the client's TCP window is full and the
        server's buffer is past its high-water mark) messages stay in the outbox, where
        they are conflated and counted, and the writer task waits for it to drain."""
        self.scheduled = False
        raw = self.raw
        if raw is None or self.blocked or self.closing is not None or not self.outbox:
            return
        if not raw.open():
            return
        if not raw.writable.is_set():
            self.blocked = True
            self.wake.set()
            return
        outbox, unsent = self.outbox, self.unsent
        frames = []
        while outbox:
            item = outbox.popleft()
            if item.channel is not None and unsent.get(item.channel) is item:
                del unsent[item.channel]
            frames.append(item.wire())
        self.queued_bytes = 0
        raw.write(frames)
        if not raw.writable.is_set():  # paused by this write: wait for it to drain
            self.blocked = True
            self.wake.set()

    async def _write(self) -> None:
        raw = self.raw
        if raw is not None:
            await self._write_raw(raw)
            return
        outbox, wake, send = self.outbox, self.wake, self.ws.send_text
        while True:
            if not outbox or self.closing is not None:
                wake.clear()
                await wake.wait()
                continue
            item = outbox.popleft()
            self.queued_bytes -= item.size
            if item.channel is not None and self.unsent.get(item.channel) is item:
                del self.unsent[item.channel]
            self.blocked = True  # stays True only while the send is suspended
            await send(item.render())
            self.blocked = False

    async def _write_raw(self, raw: RawSocket) -> None:
        """Only waits for a paused transport to drain; `flush` does the writing."""
        wake = self.wake
        while True:
            if not self.blocked or self.closing is not None:
                wake.clear()
                await wake.wait()
                continue
            await raw.writable.wait()
            self.blocked = False
            self.flush()

    # -- live messages (the Listener side) --------------------------------------------------------

    def deliver(self, channel: str, raw: str, message: dict[str, Any]) -> None:
        sub = self.subs.get(channel)
        if sub is None or self.closing is not None:
            return
        if sub.buffer is not None:
            sub.buffer.append((raw, message))
            if len(sub.buffer) > self.config.max_outbox:
                self.fail(CLOSE_SLOW, "slow_consumer: too many updates during a snapshot")
            return
        self._forward(sub, raw, message)

    def _forward(self, sub: _Subscription, raw: str, message: dict[str, Any]) -> None:
        seq = message["seq"]
        if seq <= sub.last_seq:
            return  # already in the snapshot the client has
        sub.last_seq = seq
        name = sub.channel.name
        if sub.conflate:
            waiting = self.unsent.get(name)
            if waiting is not None:
                waiting.merge(message)
                self.hub.stats.conflated += 1
                return
            item = _Item(name, raw, len(raw), message=message, first_seq=seq)
            if self.raw is not None:
                item.frame = _frames.of(raw)
            self.unsent[name] = item
            self._push(item)
            return
        self._push(_Item(name, raw, len(raw), frame=None if self.raw is None else _frames.of(raw)))

    def reset(self, channel: str) -> None:
        sub = self.subs.get(channel)
        if sub is not None:
            self._spawn(self._snapshot(sub, None))

    async def _snapshot(self, sub: _Subscription, ref: Any, announce: bool = False) -> None:
        """A fresh snapshot: live messages are held back while it is read, then those after
        it follow. Anything of this channel still queued is superseded by it."""
        name = sub.channel.name
        sub.buffer = []
        try:
            snapshot = await self.hub.feed.snapshot(sub.channel)
        except ServiceUnavailable as exc:
            sub.buffer = None
            self._error(ref, "service_unavailable", str(exc), {"channel": name})
            return
        if snapshot is None:
            sub.buffer = None
            self._error(ref, "unknown_symbol", f"{sub.channel.symbol!r} is not listed",
                        {"channel": name})  # fmt: skip
            raise _Refusal("unknown_symbol", "not listed")
        if any(item.channel == name for item in self.outbox):
            kept = deque(item for item in self.outbox if item.channel != name)
            self.queued_bytes = sum(item.size for item in kept)
            self.outbox = kept
        self.unsent.pop(name, None)
        if announce:
            self._control({"type": "subscribed", "id": ref, "channel": name})
        text = _dumps(snapshot.message())
        self._push(_Item(name, text, len(text)))
        sub.last_seq = snapshot.seq
        sub.snapshots += 1
        buffered, sub.buffer = sub.buffer, None
        for raw, message in buffered:
            self._forward(sub, raw, message)

    # -- receiving --------------------------------------------------------------------------------

    async def _read(self) -> None:
        limit = self.config.max_message_bytes
        await self.admitted.wait()
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.last_received = time.monotonic()
            text: str | None = message.get("text")
            raw: bytes | str | None = text if text is not None else message.get("bytes")
            if raw is None:
                continue
            size = len(raw.encode()) if isinstance(raw, str) else len(raw)
            if size > limit:
                self._error(None, "message_too_large", f"messages are limited to {limit} bytes",
                            {"limit": limit, "size": size})  # fmt: skip
                continue
            await self._handle(raw)

    async def _handle(self, raw: bytes | str) -> None:
        ref: Any = None
        try:
            data = raw.encode() if isinstance(raw, str) else raw
            try:
                message = check_json(data)
            except ValueError as exc:
                with contextlib.suppress(ValueError, RecursionError, AttributeError):
                    ref = _valid_ref(json.loads(data).get("id"))
                field = getattr(exc, "field", None)
                details = {"field": field, "reason": getattr(exc, "code", "")} if field else {}
                text = f"{field}: {exc}" if field else str(exc)
                raise _Refusal(getattr(exc, "code", "malformed_json"), text, details) from None
            if not isinstance(message, dict):
                raise _Refusal("malformed_message", "a message is a JSON object with an 'op'")
            ref = _valid_ref(message.get("id"))
            if ref is None and message.get("id") is not None:
                raise _Refusal("invalid_id", "'id' is a string (up to 64) or an integer")
            op = message.get("op")
            handler = self._OPS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise _Refusal("unknown_op", f"unknown op {op!r}", {"ops": sorted(self._OPS)})
            await handler(self, ref, message)
        except _Refusal as exc:
            self._error(ref, exc.code, exc.message, exc.details)

    # -- ops --------------------------------------------------------------------------------------

    async def _op_ping(self, ref: Any, message: dict[str, Any]) -> None:
        self._control({"type": "pong", "id": ref, "ts_ns": time.time_ns()})

    async def _op_auth(self, ref: Any, message: dict[str, Any]) -> None:
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise _Refusal("missing_field", "token: is required", {"field": "token"})
        if await self._authenticate(token, ref):
            assert self.principal is not None
            user = self.principal.user
            self._control(
                {
                    "type": "authenticated", "id": ref, "user": user.username,
                    "role": user.role.value, "accounts": sorted(user.accounts),
                }
            )  # fmt: skip

    async def _authenticate(self, token: str, ref: Any) -> bool:
        services = self.services
        try:
            claims = services.tokens.decode_access(token)
            if await services.revocations.is_revoked(
                claims.jti, claims.family, claims.user.username, claims.issued_at
            ):
                raise ApiError(401, "token_revoked", "the token was revoked: log in again")
        except ApiError as exc:
            self._error(ref, exc.code, exc.message)
            return False
        except ServiceUnavailable as exc:
            self._error(ref, "service_unavailable", str(exc))
            return False
        self.principal = Principal(claims)
        return True

    def _channels(self, message: dict[str, Any]) -> list[str]:
        names = message.get("channels", message.get("channel"))
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or len(names) > self.config.max_subscriptions:
            raise _Refusal("missing_field", "channel: a channel name (or 'channels': a list)",
                           {"field": "channel"})  # fmt: skip
        out: list[str] = []
        for name in names:
            if not isinstance(name, str):
                raise _Refusal("invalid_channel", "channel names are strings")
            if name in PRIVATE_KINDS:  # every account the caller owns
                if self.principal is None:
                    raise _Refusal("not_authenticated", f"{name}: authenticate first",
                                   {"channel": name})  # fmt: skip
                out += [f"{name}.{a}" for a in sorted(self.principal.user.accounts)]
            else:
                out.append(name)
        return out

    def _check_access(self, channel: Channel) -> None:
        if channel.account is None:
            return
        principal = self.principal
        if principal is None:
            raise _Refusal("not_authenticated", f"{channel.name} is private: authenticate first",
                           {"channel": channel.name})  # fmt: skip
        if not principal.may_read(channel.account):
            raise _Refusal("account_forbidden", f"account {channel.account!r} is not yours",
                           {"channel": channel.name})  # fmt: skip

    async def _op_subscribe(self, ref: Any, message: dict[str, Any]) -> None:
        for name in self._channels(message):
            channel = parse_channel(name)
            if channel is None:
                raise _Refusal("invalid_channel", f"no channel {name!r}", {"channel": name})
            self._check_access(channel)
            existing = self.subs.get(name)
            if existing is not None:
                await self._snapshot(existing, ref)
                continue
            if len(self.subs) >= self.config.max_subscriptions:
                raise _Refusal("too_many_subscriptions",
                               f"at most {self.config.max_subscriptions} channels",
                               {"channel": name})  # fmt: skip
            sub = _Subscription(channel, conflate=channel.kind in CONFLATED_KINDS, buffer=[])
            self.subs[name] = sub
            try:
                await self.hub.join(self, sub)
            except (TimeoutError, ServiceUnavailable) as exc:
                del self.subs[name]
                await self.hub.leave(self, name)
                raise _Refusal("service_unavailable", f"the live feed did not answer: {exc}",
                               {"channel": name}) from None  # fmt: skip
            try:
                await self._snapshot(sub, ref, announce=True)
            except _Refusal:
                self.subs.pop(name, None)
                await self.hub.leave(self, name)

    async def _op_unsubscribe(self, ref: Any, message: dict[str, Any]) -> None:
        for name in self._channels(message):
            if self.subs.pop(name, None) is None:
                raise _Refusal("not_subscribed", f"not subscribed to {name!r}", {"channel": name})
            await self.hub.leave(self, name)
            if name in self.unsent:
                del self.unsent[name]
                self.outbox = deque(item for item in self.outbox if item.channel != name)
                self.queued_bytes = sum(item.size for item in self.outbox)
            self._control({"type": "unsubscribed", "id": ref, "channel": name})

    async def _op_snapshot(self, ref: Any, message: dict[str, Any]) -> None:
        for name in self._channels(message):
            sub = self.subs.get(name)
            if sub is None:
                raise _Refusal("not_subscribed", f"not subscribed to {name!r}", {"channel": name})
            with contextlib.suppress(_Refusal):
                await self._snapshot(sub, ref)

    # -- commands ---------------------------------------------------------------------------------

    def _trader(self, message: dict[str, Any]) -> tuple[Principal, str, CommandHeaders]:
        if not self.config.commands:
            raise _Refusal(
                "commands_not_served",
                "this endpoint serves live data only: send commands to the trading gateway's /ws "
                "or REST API",
            )
        if self.principal is None:
            raise _Refusal("not_authenticated", "authenticate first (op 'auth' or ?token=)")
        if self.principal.claims.expires_at <= time.time():
            raise _Refusal("token_expired", "the access token has expired: authenticate again")
        account = message.get("account_id")
        if not isinstance(account, str) or not _ID_RE.match(account):
            raise _Refusal("invalid_value", "account_id: an account id", {"field": "account_id"})
        headers = {}
        for key in ("idempotency_key", "correlation_id"):
            value = message.get(key)
            if value is not None and (not isinstance(value, str) or not _HEADER_RE.match(value)):
                raise _Refusal("invalid_value", f"{key}: visible ASCII, up to 128 characters",
                               {"field": key})  # fmt: skip
            headers[key] = value
        wait = self.bucket.take()
        if wait is not None:
            raise _Refusal("rate_limited", "too many commands", {"retry_after": round(wait, 3)})
        return (
            self.principal,
            account,
            CommandHeaders(headers["idempotency_key"], headers["correlation_id"]),
        )

    def _order_id(self, message: dict[str, Any]) -> str:
        order_id = message.get("order_id")
        if not isinstance(order_id, str) or not _ID_RE.match(order_id):
            raise _Refusal("invalid_value", "order_id: an order id", {"field": "order_id"})
        return order_id

    async def _run_command(self, ref: Any, run: Callable[[], Awaitable[JSONResponse]]) -> None:
        try:
            response = await run()
        except ApiError as exc:
            self._error(ref, exc.code, exc.message, exc.details)
        except CoreStopped as exc:
            self._error(ref, "core_unavailable", str(exc))
        except ServiceUnavailable as exc:
            self._error(ref, "service_unavailable", str(exc))
        else:
            body = bytes(response.body).decode()
            self._push_text(
                f'{{"type":"result","id":{_dumps(ref)},"status":{response.status_code},'
                f'"body":{body}}}'
            )
        finally:
            self.inflight.release()

    def _push_text(self, text: str) -> None:
        self._push(_Item(None, text, len(text)))

    async def _submit(self, ref: Any, run: Callable[[], Awaitable[JSONResponse]]) -> None:
        """Decided concurrently (the core batches them); at most `max_inflight` at once."""
        await self.inflight.acquire()
        self._spawn(self._run_command(ref, run))

    def _body(self, model: type[OrderCreate] | type[OrderAmend], value: Any, field: str) -> Any:
        if not isinstance(value, dict):
            raise _Refusal("wrong_type", f"{field}: an object", {"field": field})
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            errors = [{**e, "loc": (field, *e["loc"])} for e in exc.errors()]
            refused = validation_error(RequestValidationError(errors))
            error = json.loads(bytes(refused.body))["error"]
            raise _Refusal(error["code"], error["message"], error["details"]) from None

    async def _op_place_order(self, ref: Any, message: dict[str, Any]) -> None:
        principal, account, headers = self._trader(message)
        body = self._body(OrderCreate, message.get("order"), "order")
        await self._submit(
            ref,
            lambda: order_routes.place_order(account, body, self.services, principal, headers),
        )

    async def _op_cancel_order(self, ref: Any, message: dict[str, Any]) -> None:
        principal, account, headers = self._trader(message)
        order_id = self._order_id(message)
        await self._submit(
            ref,
            lambda: order_routes.cancel_order(account, order_id, self.services, principal, headers),
        )

    async def _op_amend_order(self, ref: Any, message: dict[str, Any]) -> None:
        principal, account, headers = self._trader(message)
        order_id = self._order_id(message)
        body = self._body(OrderAmend, message.get("amend"), "amend")
        await self._submit(
            ref,
            lambda: order_routes.amend_order(
                account, order_id, body, self.services, principal, headers
            ),
        )

    async def _op_cancel_all_orders(self, ref: Any, message: dict[str, Any]) -> None:
        principal, account, headers = self._trader(message)
        symbol = message.get("symbol")
        if symbol is not None and (not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol)):
            raise _Refusal("invalid_value", "symbol: a symbol", {"field": "symbol"})
        await self._submit(
            ref,
            lambda: order_routes.cancel_all_orders(
                account, self.services, principal, headers, symbol
            ),
        )

    _OPS: ClassVar[dict[str, Callable[[Connection, Any, dict[str, Any]], Awaitable[None]]]] = {
        "ping": _op_ping,
        "auth": _op_auth,
        "subscribe": _op_subscribe,
        "unsubscribe": _op_unsubscribe,
        "snapshot": _op_snapshot,
        "place_order": _op_place_order,
        "cancel_order": _op_cancel_order,
        "amend_order": _op_amend_order,
        "cancel_all_orders": _op_cancel_all_orders,
    }

    # -- heartbeats -------------------------------------------------------------------------------

    async def _beat(self) -> None:
        config = self.config
        while True:
            await asyncio.sleep(config.heartbeat_s)
            if time.monotonic() - self.last_received > config.idle_timeout_s:
                await self.close(
                    CLOSE_IDLE, f"heartbeat_timeout: silent for {config.idle_timeout_s:g} s"
                )
                return
            principal = self.principal
            if principal is not None:
                claims = principal.claims
                if claims.expires_at <= time.time():
                    await self.close(CLOSE_AUTH, "token_expired")
                    return
                with contextlib.suppress(ServiceUnavailable):
                    if await self.services.revocations.is_revoked(
                        claims.jti, claims.family, claims.user.username, claims.issued_at
                    ):
                        await self.close(CLOSE_AUTH, "token_revoked")
                        return
            self._control({"type": "heartbeat", "ts_ns": time.time_ns()})
