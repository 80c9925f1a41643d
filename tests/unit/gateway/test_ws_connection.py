"""One /ws connection with a client that stops reading: conflation, then the cut-off."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from gateway.services import GatewayConfig
from gateway.ws.channels import Channel, ChannelSnapshot, Listener
from gateway.ws.server import CLOSE_SLOW, Connection, LiveHub, WsConfig


class StuckSocket:
    """A WebSocket whose sends wait while `reading` is clear (the client's window is full)."""

    def __init__(self) -> None:
        self.query_params: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: tuple[int, str] | None = None

    async def accept(self) -> None:
        return None

    async def send_text(self, text: str) -> None:
        await self.reading.wait()
        self.sent.append(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        await self.incoming.put({"type": "websocket.disconnect", "code": code})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    def op(self, **message: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})


class FakeFeed:
    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}

    async def listen(self, channel: str, listener: Listener, timeout: float = 5.0) -> None:
        self.listeners[channel] = listener

    async def unlisten(self, channel: str, listener: Listener) -> None:
        self.listeners.pop(channel, None)

    async def snapshot(self, channel: Channel) -> ChannelSnapshot | None:
        data: dict[str, Any] = {"bids": [], "asks": []} if channel.kind == "book" else {}
        return ChannelSnapshot(channel.name, 0, data)

    def publish(self, channel: str, seq: int, kind: str, data: dict[str, Any]) -> None:
        message = {"channel": channel, "seq": seq, "type": kind, "data": data}
        self.listeners[channel].deliver(channel, json.dumps(message), message)


async def settle(check: Any) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0)


async def test_a_slow_consumer_gets_book_deltas_conflated_then_is_cut_off_with_a_reason() -> None:
    feed = FakeFeed()
    services: Any = SimpleNamespace(config=GatewayConfig())
    hub = LiveHub(feed, services, WsConfig(max_outbox=5))
    ws = StuckSocket()
    serving = asyncio.create_task(Connection(hub, ws).serve())  # type: ignore[arg-type]
    ws.op(op="subscribe", channels=["book.BTC-USD", "trades.BTC-USD"])
    await settle(lambda: sum(m.get("type") == "snapshot" for m in ws.sent) == 2)

    ws.reading.clear()
    feed.publish("book.BTC-USD", 1, "delta", {"bids": [[100, 5, 1]], "asks": []})
    await asyncio.sleep(0)  # the writer is now stuck sending seq 1
    feed.publish("book.BTC-USD", 2, "delta", {"bids": [[101, 1, 1]], "asks": []})
    feed.publish("book.BTC-USD", 3, "delta", {"bids": [[100, 0, 0]], "asks": [[105, 2, 1]]})
    feed.publish("book.BTC-USD", 4, "delta", {"bids": [[101, 3, 2]], "asks": []})
    ws.reading.set()
    await settle(lambda: ws.sent[-1].get("seq") == 4)
    deltas = [m for m in ws.sent if m.get("type") == "delta"]
    assert [d["seq"] for d in deltas] == [1, 4]
    assert deltas[1]["first_seq"] == 2
    assert deltas[1]["data"] == {"bids": [[101, 3, 2], [100, 0, 0]], "asks": [[105, 2, 1]]}

    ws.reading.clear()
    for seq in range(1, 9):  # trades are never conflated: the queue grows past its limit
        feed.publish("trades.BTC-USD", seq, "trade", {"trade_id": seq})
        await asyncio.sleep(0)
    await asyncio.wait_for(serving, 5)
    assert ws.closed is not None
    code, reason = ws.closed
    assert code == CLOSE_SLOW and reason.startswith("slow_consumer")
    assert hub.stats.slow_disconnects == 1 and not hub.connections


async def test_a_burst_to_a_client_that_keeps_reading_is_not_cut_off() -> None:
    feed = FakeFeed()
    services: Any = SimpleNamespace(config=GatewayConfig())
    hub = LiveHub(feed, services, WsConfig(max_outbox=5))
    ws = StuckSocket()
    serving = asyncio.create_task(Connection(hub, ws).serve())  # type: ignore[arg-type]
    ws.op(op="subscribe", channel="trades.BTC-USD")
    await settle(lambda: any(m.get("type") == "snapshot" for m in ws.sent))
    for seq in range(1, 51):  # one loop turn's worth, far more than max_outbox
        feed.publish("trades.BTC-USD", seq, "trade", {"trade_id": seq})
    await settle(lambda: ws.sent[-1].get("seq") == 50)
    assert ws.closed is None and hub.stats.slow_disconnects == 0
    ws.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(serving, 5)
