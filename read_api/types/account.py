"""An account's portfolio: balances, positions with P&L, orders and their fills."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from read_api.context import Info
from read_api.loaders import FillsKey, OrdersKey
from read_api.queries import FillFilter, OrderFilter
from read_api.scalars import BigInt


def _fields(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in row.keys()}  # noqa: SIM118 - asyncpg Record


@strawberry.type
class Balance:
    asset: str
    available: Decimal
    reserved: Decimal

    @strawberry.field
    def total(self) -> Decimal:
        return self.available + self.reserved


@strawberry.type(description="Traded quantity per symbol; P&L in the quote asset")
class Position:
    symbol: str
    quantity: Decimal
    avg_cost: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    last_price: Decimal | None
    unrealized_pnl: Decimal | None


@strawberry.type
class Fill:
    order_id: str
    trade_id: BigInt
    symbol: str
    liquidity: str = strawberry.field(description="maker or taker")
    price: Decimal
    quantity: Decimal
    fee: Decimal
    executed_at: datetime

    @strawberry.field(description="the order this fill belongs to (batched)")
    async def order(self, info: Info) -> Order | None:
        row = await info.context.loaders.order.load(self.order_id)
        return None if row is None else Order.from_row(row)


@strawberry.type
class Order:
    order_id: str
    account_id: str
    symbol: str
    client_order_id: str
    side: str
    order_type: str
    time_in_force: str
    post_only: bool
    price: Decimal
    quantity: Decimal
    quote_budget: Decimal
    filled_qty: Decimal
    remaining_qty: Decimal
    filled_notional: Decimal
    fees: Decimal
    avg_fill_price: Decimal | None
    status: str
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Order:
        return cls(**_fields(row))

    @strawberry.field(description="this order's fills, oldest first (batched)")
    async def fills(self, info: Info) -> list[Fill]:
        return [Fill(**_fields(r)) for r in await info.context.loaders.fills.load(self.order_id)]


MAX_LIST = 1000


@strawberry.type(description="One account's balances, positions, orders and fills")
class Portfolio:
    account_id: str

    @strawberry.field
    async def balances(self, info: Info) -> list[Balance]:
        rows = await info.context.loaders.balances.load(self.account_id)
        return [Balance(asset=r["asset"], available=r["available"], reserved=r["reserved"])
                for r in rows]  # fmt: skip

    @strawberry.field(description="with last price and unrealized P&L")
    async def positions(self, info: Info) -> list[Position]:
        rows = await info.context.loaders.positions.load(self.account_id)
        return [Position(**{k: v for k, v in _fields(r).items() if k != "account_id"})
                for r in rows]  # fmt: skip

    @strawberry.field(description="newest first; open_only: new, open, partially filled")
    async def orders(
        self, info: Info, open_only: bool = False, symbol: str | None = None, limit: int = 100
    ) -> list[Order]:
        where = OrderFilter(open_only, symbol, min(max(limit, 1), MAX_LIST))
        rows = await info.context.loaders.orders.load(OrdersKey(self.account_id, where))
        return [Order.from_row(r) for r in rows]

    @strawberry.field(description="newest first")
    async def fills(self, info: Info, symbol: str | None = None, limit: int = 100) -> list[Fill]:
        where = FillFilter(symbol, min(max(limit, 1), MAX_LIST))
        rows = await info.context.loaders.account_fills.load(FillsKey(self.account_id, where))
        return [Fill(**{k: v for k, v in _fields(r).items() if k != "account_id"}) for r in rows]
