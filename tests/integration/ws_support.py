"""A whole gateway served by uvicorn on a test database, and a `websockets` client that
follows channels the way docs/websocket.md tells clients to (snapshot, deltas, gap → resnapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import uvicorn
import websockets
from argon2 import PasswordHasher
from fastapi import FastAPI

from gateway.ports import Role, User
from gateway.services import GatewayConfig
from gateway.tokens import TokenConfig, TokenIssuer
from infra.settings import Settings
from tradecore.bootstrap import build_gateway

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
LISTING = {
    "symbol": "BTC-USD", "base": "BTC", "quote": "USD", "base_decimals": 8,
    "quote_decimals": 4, "tick_size": "0.01", "lot_size": "0.01", "min_qty": "0.01",
    "max_qty": "100", "reference_price": "30000.00", "price_band_bps": 1000,
    "maker_fee_bps": 10, "taker_fee_bps": 20,
}  # fmt: skip
USERS = {
    "alice": User("alice", Role.TRADER, frozenset({"alice-1"})),
    "bob": User("bob", Role.TRADER, frozenset({"bob-1"})),
    "admin": User("admin", Role.ADMIN),
}


@dataclass
class LiveGateway:
    app: FastAPI
    base: str
    dsn: str
    prefix: str
    tokens: dict[str, str]
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"

    def book(self, symbol: str = "BTC-USD") -> dict[str, dict[int, int]]:
        """The core's L2 book: price -> lots per side."""
        book = self.app.state.services.core.exchange.books[symbol]
        return {
            "bids": {
                p: sum(o.remaining_lots for o in book.bids.levels[p]) for p in book.bids.prices
            },
            "asks": {
                p: sum(o.remaining_lots for o in book.asks.levels[p]) for p in book.asks.prices
            },
        }

    async def rest(self, method: str, path: str, user: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        response = await self.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def event_count(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            assert row is not None
            return int(row[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_gateway(
    dsn: str, live_publisher: str = "process", **ws_config: Any
) -> AsyncIterator[LiveGateway]:
    """build_gateway on `dsn` behind a real uvicorn, one instrument, alice-1 and bob-1 funded;
    `live_publisher`: "process" (the default) or "inline"."""
    from gateway.ws.server import WsConfig

    settings = Settings(
        env="test", demo_market=False, read_side=False, live_publisher=live_publisher
    )
    prefix = f"test:{uuid.uuid4().hex}:"
    app = build_gateway(
        settings,
        dsn=dsn,
        redis_prefix=prefix,
        config=GatewayConfig(rate_limit=100_000, rate_window_s=1, login_limit=100),
        hasher=FAST_HASHER,
    )
    app.state.live.config = WsConfig(**ws_config)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    issuer = TokenIssuer(TokenConfig(secret=settings.secret_key.get_secret_value()))
    tokens = {name: issuer.access(user, None)[0] for name, user in USERS.items()}
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            gw = LiveGateway(app, base, dsn, prefix, tokens, http)
            await gw.rest("POST", "/instruments", "admin", LISTING)
            for account in ("alice-1", "bob-1"):
                await gw.rest("POST", "/accounts", "admin", {"account_id": account})
                for asset, amount in (("USD", "10000000"), ("BTC", "1000")):
                    await gw.rest(
                        "POST", f"/accounts/{account}/deposits", "admin",
                        {"asset": asset, "amount": amount},
                    )  # fmt: skip
            yield gw
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Follower:
    """A client of /ws: keeps every message, rebuilds books, answers gaps with a resnapshot."""

    ws: websockets.ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    books: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    waiting_snapshot: set[str] = field(default_factory=set)
    gaps: int = 0
    results: dict[Any, dict[str, Any]] = field(default_factory=dict)
    close_code: int | None = None
    close_reason: str = ""
    _task: asyncio.Task[None] | None = None
    _next_id: int = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.ws.close()

    async def send(self, op: str, **fields: Any) -> int:
        self._next_id += 1
        await self.ws.send(json.dumps({"op": op, "id": self._next_id, **fields}))
        return self._next_id

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                await self.handle(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason or ""

    async def handle(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message.get("id") is not None:
            self.results[message["id"]] = message
        channel = message.get("channel")
        if channel is None or "seq" not in message:
            return
        if message["type"] == "snapshot":
            self.waiting_snapshot.discard(channel)
            self.last_seq[channel] = message["seq"]
            if channel.startswith("book."):
                data = message["data"]
                self.books[channel] = {
                    "bids": {p: lots for p, lots, _ in data["bids"]},
                    "asks": {p: lots for p, lots, _ in data["asks"]},
                }
            return
        if channel in self.waiting_snapshot:
            return
        first = message.get("first_seq", message["seq"])
        if first != self.last_seq.get(channel, 0) + 1:
            self.gaps += 1
            self.waiting_snapshot.add(channel)
            await self.send("snapshot", channel=channel)
            return
        self.last_seq[channel] = message["seq"]
        if channel.startswith("book."):
            book = self.books[channel]
            for side in ("bids", "asks"):
                for price, lots, _ in message["data"][side]:
                    if lots == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = lots

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)

    async def result(self, ref: int, timeout: float = 10.0) -> dict[str, Any]:
        await self.wait_for(lambda: ref in self.results, timeout)
        return self.results[ref]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


@contextlib.asynccontextmanager
async def follow(
    gw: LiveGateway, user: str | None = None, **connect: Any
) -> AsyncIterator[Follower]:
    url = gw.ws_url if user is None else f"{gw.ws_url}?token={gw.tokens[user]}"
    ws = await websockets.connect(url, **connect)
    follower = Follower(ws)
    follower.start()
    try:
        await follower.wait_for(
            lambda: bool(follower.of_type("welcome")) or follower.close_code is not None
        )
        yield follower
    finally:
        await follower.stop()
