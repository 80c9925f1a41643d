"""The load generator of bench/serving.py: asyncio clients (uvloop) in their own processes.

Each `run_*` function is a multiprocessing target: it runs one phase against the gateway,
writes its running count into `progress[slot]` and puts one result dict on `out`.
Latencies within a process use `time.perf_counter_ns` (one host clock).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import time
from array import array
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop
import websockets

from bench.serving_server import raise_nofile

SYMBOL = "BTC-USD"
TAKER_PRICE = "30000.00"  # the makers' resting sells are at this price (see bench/serving.py)


def resting_order(i: int) -> dict[str, str]:
    """A GTC limit order that rests (buys below, sells above the makers' 30,000.00)."""
    k = (i * 7919) % 500
    if i % 2 == 0:
        return {"symbol": SYMBOL, "side": "buy", "price": f"{29000 - k}.00", "quantity": "0.01"}
    return {"symbol": SYMBOL, "side": "sell", "price": f"{31000 + k}.00", "quantity": "0.01"}


def taker_order() -> dict[str, str]:
    """An IOC buy of one lot at the makers' price: exactly one trade."""
    return {
        "symbol": SYMBOL, "side": "buy", "price": TAKER_PRICE, "quantity": "0.01",
        "time_in_force": "ioc",
    }  # fmt: skip


def _cpu() -> float:
    return time.process_time()


def _window(warmup: float, duration: float) -> tuple[int, int]:
    start = time.perf_counter_ns() + int(warmup * 1e9)
    return start, start + int(duration * 1e9)


# -- order entry over HTTP -----------------------------------------------------------------------


async def connect_trader(url: str, compression: str | None) -> websockets.ClientConnection:
    """Connect with ?token= and wait for `welcome`: the server reads commands while it is
    still checking the token, so one sent earlier can be refused `not_authenticated`."""
    ws = await websockets.connect(url, compression=compression, max_queue=None, open_timeout=60)  # type: ignore[arg-type]
    async with asyncio.timeout(60):
        while json.loads(await ws.recv()).get("type") != "welcome":
            pass
    return ws


async def _keepalive(ws: websockets.ClientConnection) -> None:
    """The server cuts clients silent for 45 s."""
    while True:
        await asyncio.sleep(20)
        await ws.send('{"op": "ping"}')


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (closed loop).

    A lean client on purpose: httpx spends about 2 ms of CPU per request here, more than the
    server, and on a 2-core box the load generator's CPU is taken from the server. Requests
    are written as bytes and responses parsed by httptools (C), the parser uvicorn uses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body, self.chunks = b"".join(self.chunks), []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


def _outcome(status: int, body: bytes) -> str:
    if status != 200:
        return f"http_{status}"
    # The body is the command's outcome (gateway/commanding.py); its key is near the start.
    at = body.find(b'"outcome":"')
    return "?" if at < 0 else body[at + 11 : body.index(b'"', at + 11)].decode()


async def _http_entry(
    base: str,
    traders: Sequence[tuple[str, str]],
    connections: int,
    warmup: float,
    duration: float,
    progress: Any,
    slot: int,
) -> dict[str, Any]:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    latencies: list[int] = []
    outcomes: dict[str, int] = {}
    done = 0
    cpu = _cpu()
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(_HttpConnection, host, port))[1] for _ in range(connections)
    ]
    measure_from, stop = _window(warmup, duration)

    async def one(k: int, conn: _HttpConnection) -> None:
        nonlocal done
        account, token = traders[k % len(traders)]
        head = (
            f"POST /accounts/{account}/orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()
        i = k
        while (sent := time.perf_counter_ns()) < stop:
            body = json.dumps(resting_order(i)).encode()
            status, answer = await conn.request(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            now = time.perf_counter_ns()
            i += connections
            key = _outcome(status, answer)
            if measure_from <= sent and now <= stop:
                latencies.append(now - sent)
                outcomes[key] = outcomes.get(key, 0) + 1
            done += 1
            if done % 200 == 0:
                progress[slot] = done

    await asyncio.gather(*(one(k, conn) for k, conn in enumerate(conns)))
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    progress[slot] = done
    return {"latencies_ns": latencies, "outcomes": outcomes, "cpu_s": _cpu() - cpu}


def run_http_entry(out: Any, progress: Any, slot: int, **kw: Any) -> None:
    raise_nofile()
    out.put(uvloop.run(_http_entry(progress=progress, slot=slot, **kw)))


# -- order entry over /ws ------------------------------------------------------------------------


async def _ws_entry(
    ws_url: str,
    traders: Sequence[tuple[str, str]],
    sockets: int,
    inflight: int,
    warmup: float,
    duration: float,
    deflate: bool,
    progress: Any,
    slot: int,
) -> dict[str, Any]:
    latencies: list[int] = []
    outcomes: dict[str, int] = {}
    done = 0
    cpu = _cpu()
    compression = "deflate" if deflate else None
    conns = [
        await connect_trader(f"{ws_url}?token={traders[s % len(traders)][1]}", compression)
        for s in range(sockets)
    ]
    measure_from, stop = _window(warmup, duration)

    async def drive(s: int, ws: websockets.ClientConnection) -> None:
        nonlocal done
        account = traders[s % len(traders)][0]
        room = asyncio.Semaphore(inflight)
        sent_at: dict[int, int] = {}
        finished = asyncio.Event()

        async def read() -> None:
            nonlocal done
            async for raw in ws:
                message = json.loads(raw)
                sent = sent_at.pop(message.get("id", -1), None) if "id" in message else None
                if sent is None:
                    continue
                now = time.perf_counter_ns()
                if message["type"] == "result":
                    key = message["body"].get("outcome", f"status_{message['status']}")
                else:
                    key = message.get("code", message["type"])
                if measure_from <= sent and now <= stop:
                    latencies.append(now - sent)
                    outcomes[key] = outcomes.get(key, 0) + 1
                done += 1
                if done % 200 == 0:
                    progress[slot] = done
                room.release()
                if not sent_at and time.perf_counter_ns() >= stop:
                    finished.set()

        reader = asyncio.create_task(read())
        i = s
        while True:
            await room.acquire()
            if time.perf_counter_ns() >= stop:
                break
            i += sockets
            sent_at[i] = time.perf_counter_ns()
            await ws.send(
                json.dumps(
                    {"op": "place_order", "id": i, "account_id": account, "order": resting_order(i)}
                )
            )
        if sent_at:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), 30)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()

    await asyncio.gather(*(drive(s, ws) for s, ws in enumerate(conns)))
    progress[slot] = done
    return {"latencies_ns": latencies, "outcomes": outcomes, "cpu_s": _cpu() - cpu}


def run_ws_entry(out: Any, progress: Any, slot: int, **kw: Any) -> None:
    raise_nofile()
    out.put(uvloop.run(_ws_entry(progress=progress, slot=slot, **kw)))


# -- fan-out: order accepted -> trade seen by each subscriber ------------------------------------

_TRADE = re.compile(rb'"type":"trade","data":\{[^{}]*?"trade_id":(\d+)')
_TRADE_MARK = b'"type":"trade"'
_SNAPSHOT = b'"type":"snapshot"'
_ERROR = b'"type":"error"'
_PING = b"\x81\x8d\x00\x00\x00\x00" + b'{"op":"ping"}'  # masked with a zero key: as is


class _Subscriber(asyncio.Protocol):
    """A lean WebSocket subscriber: a raw asyncio protocol that walks frame headers and
    finds trade ids with one regex over each read, so the load generator costs far less
    CPU per delivered message than the server (the `websockets` client cost more)."""

    def __init__(self, request: bytes, subscribe: bytes, sink: _Sink) -> None:
        self.request = request
        self.subscribe = subscribe
        self.sink = sink
        self.buf = bytearray()
        self.upgraded = False
        self.ready = False
        self.transport: asyncio.Transport | None = None
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.close: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close is None:
            self.close = f"lost {type(exc).__name__}" if exc else "lost"
        if not self.outcome.done():
            self.outcome.set_result(self.close)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        buf = self.buf
        buf += data
        if not self.upgraded:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._finish(f"handshake {bytes(buf[:12])!r}")
                return
            del buf[: head + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(self.subscribe)  # frames sent with the request may be lost
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            if length < 126:
                header = 2
            elif length == 126:
                if n - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            else:
                if n - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + header + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 8:  # close
                body = bytes(buf[pos + header : end])
                code = int.from_bytes(body[:2], "big") if len(body) >= 2 else 1005
                self._finish(f"{code} {body[2:].decode(errors='replace')}".strip())
                return
            if opcode == 9 and self.transport is not None:  # ping: pong with its payload
                body = bytes(buf[pos + header : end])
                self.transport.write(bytes((0x8A, 0x80 | len(body))) + b"\0\0\0\0" + body)
            pos = end
        if pos == 0:
            return
        region = memoryview(buf)[:pos]
        sink = self.sink
        # Under load a read carries many trades, and their ids are consecutive (one symbol,
        # in order): the first id and the count say which they were, without parsing each.
        count = buf.count(_TRADE_MARK, 0, pos)
        if count:
            first = _TRADE.search(buf, 0, pos)
            last = _TRADE.search(buf, buf.rfind(_TRADE_MARK, 0, pos), pos)
            if first and last and int(last[1]) - int(first[1]) + 1 == count:
                sink.record(int(first[1]), count, now)
            else:  # not a consecutive run: every id, one by one
                for match in _TRADE.finditer(region):
                    sink.record(int(match[1]), 1, now)
        if not self.ready and buf.find(_SNAPSHOT, 0, pos) >= 0:
            self.ready = True
            sink.ready += 1
            if not self.outcome.done():
                self.outcome.set_result("ready")
        at = buf.find(_ERROR, 0, pos)
        if at >= 0:
            found = re.search(rb'"code":"([^"]*)"', bytes(buf[at:pos]))
            code = found[1].decode() if found else "?"
            sink.errors[code] = sink.errors.get(code, 0) + 1
            if not self.ready:  # refused: no snapshot is coming, do not wait for one
                self.close = f"error {code}"
                if not self.outcome.done():
                    self.outcome.set_result(self.close)
        region.release()
        del buf[:pos]

    def _finish(self, why: str) -> None:
        self.close = why
        if not self.outcome.done():
            self.outcome.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def ping(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_PING)


class _Sink:
    """What every subscriber of one process saw."""

    def __init__(self) -> None:
        # runs of trade messages read at once by one subscriber: first trade id, how many
        # (consecutive ids), perf_counter_ns of the read
        self.firsts = array("q")
        self.counts = array("q")
        self.arrivals = array("q")
        self.delivered = 0
        self.ready = 0
        self.errors: dict[str, int] = {}

    def record(self, first: int, count: int, at: int) -> None:
        self.firsts.append(first)
        self.counts.append(count)
        self.arrivals.append(at)
        self.delivered += count

    def latencies(self, trade_sent: dict[int, int], measure_from: int) -> array[int]:
        """Read time - send time of every delivered trade sent after `measure_from`."""
        out = array("q")
        for first, count, at in zip(self.firsts, self.counts, self.arrivals, strict=True):
            for trade_id in range(first, first + count):
                sent = trade_sent.get(trade_id, -1)
                if sent >= measure_from:
                    out.append(at - sent)
        return out


def _masked_text(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes((0x81, 0x80 | len(data))) + b"\0\0\0\0" + data


async def _subscribe(
    host: str, port: int, path: str, channel: str, sink: _Sink, timeout: float
) -> _Subscriber:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    subscribe = _masked_text(json.dumps({"op": "subscribe", "channel": channel}))
    loop = asyncio.get_running_loop()
    _, sub = await asyncio.wait_for(
        loop.create_connection(lambda: _Subscriber(request, subscribe, sink), host, port), timeout
    )
    return sub


async def _subscribers(
    ws_url: str,
    subscribers: int,
    connect_concurrency: int,
    progress: Any,
    slot: int,
    connected: Any,
    inbox: Any,
) -> dict[str, Any]:
    """One subscriber process: connect, subscribe, tell the taker (`connected[slot]`), record
    every trade message read; when the taker's send times arrive in `inbox`, let the last
    trades land and turn the arrivals into latencies (one clock: CLOCK_MONOTONIC)."""
    url = urlsplit(ws_url)
    host, port, path = url.hostname or "127.0.0.1", url.port or 80, url.path or "/"
    sink = _Sink()
    closes: dict[str, int] = {}
    gate = asyncio.Semaphore(connect_concurrency)
    channel = f"trades.{SYMBOL}"
    connect_started = time.perf_counter()
    subs: list[_Subscriber] = []
    # Every wait has a deadline: a subscriber that gets neither a snapshot nor a close in
    # time is counted as not ready (and the phase as not met) instead of waiting forever.
    ready_deadline = time.perf_counter() + max(60.0, subscribers / 50)

    async def keepalive() -> None:  # the server cuts clients silent for 45 s
        while True:
            await asyncio.sleep(15)
            for each in subs:  # from the first connection on: connecting may take a while
                if each.close is None:
                    each.ping()

    sub_pinger = asyncio.create_task(keepalive())

    async def subscriber() -> None:
        async with gate:
            remaining = ready_deadline - time.perf_counter()
            try:
                sub = await _subscribe(host, port, path, channel, sink, max(1.0, remaining))
            except (OSError, TimeoutError) as exc:
                key = f"connect failed: {type(exc).__name__}"
                closes[key] = closes.get(key, 0) + 1
                return
            subs.append(sub)
            # the next connection waits for this one's snapshot (or a bounded time)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(sub.outcome), max(0.1, ready_deadline - time.perf_counter())
                )
            progress[slot] = sink.ready

    await asyncio.gather(*(subscriber() for _ in range(subscribers)))
    not_ready = sum(1 for s in subs if not s.ready and s.close is None)
    if not_ready:
        closes[f"no snapshot in {ready_deadline - connect_started:.0f} s"] = not_ready
    for s in subs:
        if not s.ready and s.close is not None:
            closes[s.close] = closes.get(s.close, 0) + 1
    connect_s = time.perf_counter() - connect_started
    live = [s for s in subs if s.ready and s.close is None]
    cpu = _cpu()
    connected[slot] = 1

    # The taker's send time of every trade, once it has sent its last order.
    loop = asyncio.get_running_loop()
    trade_sent, measure_from = await loop.run_in_executor(None, inbox.get)
    expected_tail = len(trade_sent) * len(live)
    settle = time.perf_counter() + 5
    while sink.delivered < expected_tail and time.perf_counter() < settle:
        await asyncio.sleep(0.05)
    cpu = _cpu() - cpu
    for s in live:
        if s.close is not None:
            closes[s.close] = closes.get(s.close, 0) + 1
    held = sum(1 for s in live if s.close is None)
    sub_pinger.cancel()
    await asyncio.gather(sub_pinger, return_exceptions=True)
    for s in subs:
        if s.transport is not None:
            s.transport.close()
    if sink.errors:
        closes.update({f"error {k}": v for k, v in sink.errors.items()})
    latencies = sink.latencies(trade_sent, measure_from)
    return {
        "latencies_ns": latencies,
        "closes": closes,
        "held": held,
        "connect_s": connect_s,
        "cpu_s": cpu,
    }


async def _taker(
    ws_url: str,
    taker: tuple[str, str],
    rate: float,
    warmup: float,
    duration: float,
    deflate: bool,
    connected: Any,
    wait_s: float,
) -> dict[str, Any]:
    """The taker process: once every subscriber process is connected (`connected`), one
    authenticated socket sends IOC buys open loop on a fixed schedule; returns the send
    time of every trade they made."""
    give_up = time.perf_counter() + wait_s
    while not all(connected) and time.perf_counter() < give_up:
        await asyncio.sleep(0.05)
    account, token = taker
    placer = await connect_trader(f"{ws_url}?token={token}", "deflate" if deflate else None)
    sent_at: dict[int, int] = {}
    trade_sent: dict[int, int] = {}  # trade_id -> send time of the order that made it
    answered = 0
    outcomes: dict[str, int] = {}

    async def read_results() -> None:
        nonlocal answered
        async for raw in placer:
            message = json.loads(raw)
            if message.get("type") not in ("result", "error") or "id" not in message:
                continue
            sent = sent_at.pop(message["id"])
            answered += 1
            body = message.get("body", {})
            key = body.get("outcome", message.get("code", "?"))
            outcomes[key] = outcomes.get(key, 0) + 1
            for item in body.get("events", []):
                event = item["event"]
                if event["event_type"] == "TradeExecuted":
                    trade_sent[event["trade_id"]] = sent

    results_task = asyncio.create_task(read_results())
    pinger = asyncio.create_task(_keepalive(placer))
    cpu = _cpu()
    loop_lag: list[int] = []
    begin = time.perf_counter_ns()
    measure_from = begin + int(warmup * 1e9)
    total = int(rate * (warmup + duration))
    period = 1e9 / rate
    for i in range(total):
        due = begin + int(i * period)
        now = time.perf_counter_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            now = time.perf_counter_ns()
        loop_lag.append(now - due)
        sent_at[i] = now
        order = taker_order()
        await placer.send(
            json.dumps({"op": "place_order", "id": i, "account_id": account, "order": order})
        )
    send_end = time.perf_counter_ns()
    deadline = time.perf_counter() + 15
    while sent_at and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    cpu = _cpu() - cpu
    pinger.cancel()
    results_task.cancel()
    await asyncio.gather(pinger, results_task, return_exceptions=True)
    with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
        await asyncio.wait_for(placer.close(), 5)
    lag = sorted(loop_lag)
    return {
        "taker": True,
        "trade_sent": trade_sent,
        "measure_from": measure_from,
        "trades": sum(1 for sent in trade_sent.values() if sent >= measure_from),
        "offered_s": (send_end - measure_from) / 1e9,
        "unanswered": len(sent_at),
        "answered": answered,
        "outcomes": outcomes,
        "cpu_s": cpu,
        "send_lag_p99_ms": lag[int(0.99 * (len(lag) - 1))] / 1e6 if lag else 0.0,
    }


def run_fanout(
    out: Any, progress: Any, slot: int, connected: Any, inbox: Any = None, **kw: Any
) -> None:
    """A fan-out client process: the taker (`taker=` given) or a share of the subscribers."""
    raise_nofile()
    if "taker" in kw:
        out.put(uvloop.run(_taker(connected=connected, **kw)))
    else:
        out.put(
            uvloop.run(
                _subscribers(progress=progress, slot=slot, connected=connected, inbox=inbox, **kw)
            )
        )
