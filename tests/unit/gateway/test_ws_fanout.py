"""The hub's per-channel fan-out (gateway.ws.server._Fanout): one feed listener per channel,
shared bytes for steady subscribers, passes spread over loop turns."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.services import GatewayConfig
from gateway.ws import server
from gateway.ws.server import Connection, LiveHub
from tests.unit.gateway.test_ws_connection import FakeFeed, settle
from tests.unit.gateway.test_ws_frames import UvicornSocket

CHANNEL = "trades.BTC-USD"


class CountingFeed(FakeFeed):
    def __init__(self) -> None:
        super().__init__()
        self.listens = 0

    async def listen(self, channel: str, listener: Any, timeout: float = 5.0) -> None:
        self.listens += 1
        assert self.listeners.get(channel, listener) is listener, "one listener per channel"
        await super().listen(channel, listener, timeout)


async def subscribers(hub: LiveHub, n: int) -> tuple[list[UvicornSocket], list[asyncio.Task[None]]]:
    sockets = [UvicornSocket() for _ in range(n)]
    tasks = [asyncio.create_task(Connection(hub, ws).serve()) for ws in sockets]  # type: ignore[arg-type]
    for ws in sockets:
        ws.op(op="subscribe", channel=CHANNEL)
    for ws in sockets:
        transport = ws.proto.transport
        await settle(lambda t=transport: any(m.get("type") == "snapshot" for m in t.frames()))
    return sockets, tasks


def trade_seqs(ws: UvicornSocket) -> list[int]:
    return [m["seq"] for m in ws.proto.transport.frames() if m.get("type") == "trade"]


async def close(sockets: list[UvicornSocket], tasks: list[asyncio.Task[None]]) -> None:
    for ws in sockets:
        ws.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)


async def test_many_subscribers_share_one_listener_and_the_same_bytes_in_one_write() -> None:
    feed = CountingFeed()
    hub = LiveHub(feed, SimpleNamespace(config=GatewayConfig()))  # type: ignore[arg-type]
    sockets, tasks = await subscribers(hub, 20)
    assert len(feed.listeners) == 1 and hub.fanouts[CHANNEL].members.keys() == {
        c for c in hub.connections
    }
    before = [len(ws.proto.transport.writes) for ws in sockets]
    for seq in range(1, 6):
        feed.publish(CHANNEL, seq, "trade", {"trade_id": seq})
    await settle(lambda: all(trade_seqs(ws) == [1, 2, 3, 4, 5] for ws in sockets))
    written = [ws.proto.transport.writes[n] for ws, n in zip(sockets, before, strict=True)]
    assert all(
        len(ws.proto.transport.writes) == n + 1 for ws, n in zip(sockets, before, strict=True)
    )
    assert all(w is written[0] for w in written)  # one byte string for every subscriber
    await close(sockets, tasks)
    assert not hub.fanouts and not feed.listeners  # the last one out stops listening


async def test_a_pass_spans_loop_turns_and_messages_during_it_follow_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "FANOUT_CHUNK", 2)
    feed = FakeFeed()
    hub = LiveHub(feed, SimpleNamespace(config=GatewayConfig()))  # type: ignore[arg-type]
    sockets, tasks = await subscribers(hub, 7)
    feed.publish(CHANNEL, 1, "trade", {"trade_id": 1})
    await asyncio.sleep(0)  # the first chunk is written...
    assert sum(trade_seqs(ws) == [1] for ws in sockets) == 2
    feed.publish(CHANNEL, 2, "trade", {"trade_id": 2})  # ... and more arrive mid-pass
    feed.publish(CHANNEL, 3, "trade", {"trade_id": 3})
    sockets[5].incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})  # one leaves
    await settle(lambda: all(trade_seqs(ws) == [1, 2, 3] for i, ws in enumerate(sockets) if i != 5))
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(trade_seqs(ws) == [1, 2, 3] for i, ws in enumerate(sockets) if i != 5)
    await close(sockets, tasks)


async def test_a_subscriber_that_cannot_take_the_shared_bytes_gets_each_message_in_order() -> None:
    feed = FakeFeed()
    hub = LiveHub(feed, SimpleNamespace(config=GatewayConfig()))  # type: ignore[arg-type]
    sockets, tasks = await subscribers(hub, 3)
    stuck = sockets[1]
    stuck.proto.writable.clear()  # its client stopped reading: uvicorn paused the transport
    for seq in range(1, 4):
        feed.publish(CHANNEL, seq, "trade", {"trade_id": seq})
    await settle(
        lambda: trade_seqs(sockets[0]) == [1, 2, 3] and trade_seqs(sockets[2]) == [1, 2, 3]
    )
    assert trade_seqs(stuck) == []
    stuck.proto.writable.set()
    feed.publish(CHANNEL, 4, "trade", {"trade_id": 4})
    await settle(lambda: trade_seqs(stuck) == [1, 2, 3, 4])
    await settle(lambda: all(trade_seqs(ws) == [1, 2, 3, 4] for ws in sockets))
    await close(sockets, tasks)
