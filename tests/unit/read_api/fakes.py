"""Fakes of read_api's ports: a database answering by table, the gateway, the live feed."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from read_api.errors import ReadApiError
from read_api.live import LiveMessage
from read_api.viewer import CommandReply, Viewer

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

ALICE = Viewer("alice", "trader", frozenset({"alice-1"}), "Bearer alice", None)
BOB = Viewer("bob", "trader", frozenset({"bob-1"}), "Bearer bob", None)
AUDITOR = Viewer("auditor", "auditor", frozenset(), "Bearer auditor", None)


class FakeDb:
    """Answers each statement from in-memory tables and records every statement run."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.tables: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def _rows(self, query: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        self.statements.append(query)
        text = " ".join(query.split())
        if "FROM balances WHERE" in text:
            return [r for r in self.tables["balances"] if r["account_id"] in args[0]]
        if "FROM positions_valued" in text:
            return [r for r in self.tables["positions"] if r["account_id"] in args[0]]
        if "FROM order_fills f JOIN orders" in text:
            owner = {o["order_id"]: o["account_id"] for o in self.tables["orders"]}
            return [
                {"account_id": owner[f["order_id"]], **f}
                for f in self.tables["fills"]
                if owner[f["order_id"]] in args[0]
            ]
        if "FROM order_fills WHERE" in text:
            return [r for r in self.tables["fills"] if r["order_id"] in args[0]]
        if "FROM orders o" in text:
            return [r for r in self.tables["orders"] if r["account_id"] in args[0]]
        if "FROM orders WHERE order_id" in text:
            return [r for r in self.tables["orders"] if r["order_id"] in args[0]]
        if "FROM trades" in text:
            return [r for r in self.tables["trades"] if r["symbol"] == args[0]]
        if "FROM candles" in text:
            return [r for r in self.tables["candles"] if r["symbol"] == args[0]]
        if "FROM market_stats_24h" in text:
            return list(self.tables["stats"])
        if "DISTINCT account_id FROM balances" in text:
            return [
                {"account_id": a}
                for a in sorted({r["account_id"] for r in self.tables["balances"]})
            ]
        return []

    async def execute(self, query: str, *args: Any) -> str:
        self.statements.append(query)
        return ""

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None:
        self.statements.append(command)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        return self._rows(query, args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        rows = self._rows(query, args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return 0


def order_row(order_id: str, account_id: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "order_id": order_id,
        "account_id": account_id,
        "symbol": "BTC-USD",
        "client_order_id": order_id,
        "side": "buy",
        "order_type": "limit",
        "time_in_force": "gtc",
        "post_only": False,
        "price": Decimal("30000.00"),
        "quantity": Decimal("1"),
        "quote_budget": Decimal(0),
        "filled_qty": Decimal("0.5"),
        "remaining_qty": Decimal("0.5"),
        "filled_notional": Decimal("15000"),
        "fees": Decimal("3"),
        "avg_fill_price": Decimal("30000"),
        "status": "partially_filled",
        "cancel_reason": None,
        "created_at": T0,
        "updated_at": T0,
    }
    row.update(kw)
    return row


def fill_row(order_id: str, trade_id: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "trade_id": trade_id,
        "symbol": "BTC-USD",
        "liquidity": "maker",
        "price": Decimal("30000"),
        "quantity": Decimal("0.5"),
        "fee": Decimal("1.5"),
        "executed_at": T0,
    }


def trade_row(trade_id: int, maker: str, taker: str) -> dict[str, Any]:
    return {
        "symbol": "BTC-USD",
        "trade_id": trade_id,
        "executed_at": T0,
        "executed_at_ns": 1_795_000_000_000_000_000 + trade_id,
        "price": Decimal("30000.00"),
        "quantity": Decimal("0.5"),
        "notional": Decimal("15000"),
        "taker_side": "buy",
        "maker_order_id": f"o-m{trade_id}",
        "taker_order_id": f"o-t{trade_id}",
        "maker_account_id": maker,
        "taker_account_id": taker,
        "maker_fee": Decimal("1.5"),
        "taker_fee": Decimal("3"),
        "position": 100 + trade_id,
    }


class FakeGateway:
    """Tokens are "Bearer <name>" of the viewers it knows; commands are recorded."""

    def __init__(self, *viewers: Viewer) -> None:
        self.viewers = {v.authorization: v for v in viewers}
        self.commands: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = []
        self.reply: CommandReply | ReadApiError = CommandReply(
            200,
            {
                "command_id": "gw-1",
                "correlation_id": "gw-1",
                "outcome": "accepted",
                "reason": None,
                "duplicate": False,
                "order_id": "o-1",
                "events": [{"position": 7, "event": {"event_type": "OrderAccepted"}}],
            },
        )

    async def authenticate(self, authorization: str) -> Viewer:
        viewer = self.viewers.get(authorization)
        if viewer is None:
            raise ReadApiError("invalid_token", "not a valid access token", status=401)
        return viewer

    async def command(
        self,
        viewer: Viewer,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> CommandReply:
        self.commands.append((method, path, body, headers))
        if isinstance(self.reply, ReadApiError):
            raise self.reply
        return self.reply


class FakeLiveFeed:
    """In-memory pub/sub: `publish` reaches the subscribers of that moment."""

    def __init__(self) -> None:
        self.queues: dict[str, list[asyncio.Queue[LiveMessage]]] = defaultdict(list)
        self.subscribed = asyncio.Event()

    async def subscribe(self, channel: str) -> AsyncIterator[LiveMessage]:
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue()
        self.queues[channel].append(queue)
        self.subscribed.set()
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues[channel].remove(queue)

    def publish(self, channel: str, seq: int, kind: str, data: dict[str, Any]) -> None:
        for queue in self.queues[channel]:
            queue.put_nowait({"channel": channel, "seq": seq, "type": kind, "data": data})
