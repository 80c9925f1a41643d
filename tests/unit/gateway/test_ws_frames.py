"""Live messages written as shared frames straight to the transport (gateway.ws.frames)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from gateway.services import GatewayConfig
from gateway.ws.frames import raw_socket, text_frame
from gateway.ws.server import CLOSE_SLOW, Connection, LiveHub, WsConfig
from tests.unit.gateway.test_ws_connection import FakeFeed, StuckSocket, settle


class FakeTransport:
    def __init__(self, proto: FakeProtocol) -> None:
        self.proto = proto
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def frames(self) -> list[dict[str, Any]]:
        data, out = b"".join(self.writes), []
        while data:
            assert data[0] == 0x81  # FIN + text, unmasked
            n, at = data[1], 2
            if n == 126:
                n, at = int.from_bytes(data[2:4], "big"), 4
            out.append(json.loads(data[at : at + n]))
            data = data[at + n :]
        return out


class FakeProtocol:
    """The parts of uvicorn's sans-I/O WebSocket protocol the fast path reads."""

    def __init__(self) -> None:
        self.transport = FakeTransport(self)
        self.writable = asyncio.Event()
        self.writable.set()
        self.close_sent = False
        self.disconnected = False
        self.conn = SimpleNamespace(state=1, extensions=[])

    async def send(self, message: dict[str, Any]) -> None:
        return None


class UvicornSocket(StuckSocket):
    def __init__(self) -> None:
        super().__init__()
        self.proto = FakeProtocol()

        send = self.proto.send

        async def sender(message: dict[str, Any]) -> None:  # Starlette wraps uvicorn's send
            await send(message)

        self._send = sender


def test_a_frame_carries_its_length_in_the_short_and_16_bit_forms() -> None:
    assert text_frame("hi") == b"\x81\x02hi"
    long = "x" * 300
    assert text_frame(long) == b"\x81\x7e\x01\x2c" + long.encode()


def test_the_fast_path_is_refused_when_compression_was_negotiated() -> None:
    ws = UvicornSocket()
    assert raw_socket(ws) is not None
    ws.proto.conn.extensions = ["permessage-deflate"]
    assert raw_socket(ws) is None


async def test_messages_of_one_loop_turn_go_out_in_one_write_with_the_same_frame_bytes() -> None:
    feed = FakeFeed()
    hub = LiveHub(feed, SimpleNamespace(config=GatewayConfig()))  # type: ignore[arg-type]
    ws = UvicornSocket()
    serving = asyncio.create_task(Connection(hub, ws).serve())  # type: ignore[arg-type]
    ws.op(op="subscribe", channel="trades.BTC-USD")
    transport = ws.proto.transport
    await settle(lambda: any(m.get("type") == "snapshot" for m in transport.frames()))
    writes = len(transport.writes)
    for seq in range(1, 11):
        feed.publish("trades.BTC-USD", seq, "trade", {"trade_id": seq})
    await settle(lambda: len(transport.writes) > writes)
    await asyncio.sleep(0)
    assert len(transport.writes) == writes + 1
    assert [m["seq"] for m in transport.frames() if m.get("type") == "trade"] == list(range(1, 11))
    ws.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(serving, 5)


async def test_a_paused_transport_conflates_book_deltas_then_cuts_off_a_slow_consumer() -> None:
    feed = FakeFeed()
    hub = LiveHub(feed, SimpleNamespace(config=GatewayConfig()), WsConfig(max_outbox=5))  # type: ignore[arg-type]
    ws = UvicornSocket()
    serving = asyncio.create_task(Connection(hub, ws).serve())  # type: ignore[arg-type]
    ws.op(op="subscribe", channels=["book.BTC-USD", "trades.BTC-USD"])
    transport = ws.proto.transport
    await settle(lambda: sum(m.get("type") == "snapshot" for m in transport.frames()) == 2)

    ws.proto.writable.clear()  # the client's window is full: uvicorn paused writing
    feed.publish("book.BTC-USD", 1, "delta", {"bids": [[100, 5, 1]], "asks": []})
    feed.publish("book.BTC-USD", 2, "delta", {"bids": [[101, 1, 1]], "asks": []})
    await asyncio.sleep(0.01)
    ws.proto.writable.set()
    await settle(lambda: any(m.get("seq") == 2 for m in transport.frames()))
    deltas = [m for m in transport.frames() if m.get("type") == "delta"]
    assert [(d["first_seq"], d["seq"]) for d in deltas] == [(1, 2)]
    assert deltas[0]["data"] == {"bids": [[101, 1, 1], [100, 5, 1]], "asks": []}

    ws.proto.writable.clear()
    for seq in range(1, 9):  # trades are never conflated: the queue grows past its limit
        feed.publish("trades.BTC-USD", seq, "trade", {"trade_id": seq})
        await asyncio.sleep(0)
    ws.proto.writable.set()
    await asyncio.wait_for(serving, 5)
    assert ws.closed is not None and ws.closed[0] == CLOSE_SLOW
