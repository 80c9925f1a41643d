"""Market data: instruments, trades, candles, the L2 book and 24-hour statistics."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.scalars import JSON

from projections.order_book import top_of_book
from read_api.context import Info
from read_api.permissions import SeesMaker, SeesTaker
from read_api.scalars import BigInt


@strawberry.type(description="24 hours ending at the symbol's latest trade (event time)")
class MarketStats:
    symbol: str
    window_start: datetime
    window_end: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    change: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int

    @classmethod
    def from_row(cls, row: Any) -> MarketStats:
        return cls(
            symbol=row["symbol"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            open=row["open"],
            high=row["high"],
            low=row["low"],
            last=row["last"],
            change=row["change"],
            volume=row["volume"],
            quote_volume=row["quote_volume"],
            trade_count=row["trade_count"],
        )


@strawberry.type
class BookLevel:
    price: Decimal
    quantity: Decimal
    order_count: int


@strawberry.type(description="Aggregated resting orders: bids highest first, asks lowest first")
class OrderBook:
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]


async def order_book(info: Info, symbol: str, depth: int) -> OrderBook:
    sides = await top_of_book(info.context.db, symbol, depth)
    return OrderBook(
        symbol=symbol,
        bids=[BookLevel(price=p, quantity=q, order_count=n) for p, q, n in sides["bids"]],
        asks=[BookLevel(price=p, quantity=q, order_count=n) for p, q, n in sides["asks"]],
    )


@strawberry.type
class Instrument:
    symbol: str
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    reference_price: Decimal
    maker_fee_bps: int
    taker_fee_bps: int
    listed_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Instrument:
        return cls(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - asyncpg Record

    @strawberry.field(description="24-hour statistics (batched over instruments)")
    async def stats(self, info: Info) -> MarketStats | None:
        row = await info.context.loaders.stats.load(self.symbol)
        return None if row is None else MarketStats.from_row(row)

    @strawberry.field
    async def book(self, info: Info, depth: int = 10) -> OrderBook:
        return await order_book(info, self.symbol, min(max(depth, 1), 100))


PRIVATE_MAKER: list[FieldExtension] = [PermissionExtension([SeesMaker()], fail_silently=True)]
PRIVATE_TAKER: list[FieldExtension] = [PermissionExtension([SeesTaker()], fail_silently=True)]


@strawberry.type(description="A trade; each side's order, account and fee only to its owner")
class Trade:
    symbol: str
    trade_id: BigInt
    executed_at: datetime
    executed_at_ns: BigInt
    price: Decimal
    quantity: Decimal
    notional: Decimal
    taker_side: str
    position: BigInt = strawberry.field(description="the trade's position in the event log")
    maker_order_id: str | None = strawberry.field(extensions=PRIVATE_MAKER)
    maker_account_id: str | None = strawberry.field(extensions=PRIVATE_MAKER)
    maker_fee: Decimal | None = strawberry.field(extensions=PRIVATE_MAKER)
    taker_order_id: str | None = strawberry.field(extensions=PRIVATE_TAKER)
    taker_account_id: str | None = strawberry.field(extensions=PRIVATE_TAKER)
    taker_fee: Decimal | None = strawberry.field(extensions=PRIVATE_TAKER)

    @classmethod
    def from_row(cls, row: Any) -> Trade:
        return cls(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - asyncpg Record


CANDLE_COLUMNS = (
    "bucket", "open", "high", "low", "close", "volume", "quote_volume", "vwap", "trade_count",
    "first_trade_id", "last_trade_id",
)  # fmt: skip


@strawberry.type(
    description="Bars as rows of cells in `columns` order: decimals and times as strings, "
    "counts and trade ids as integers (the database's own text: exact). The compact form "
    "for charts (one value, not a field "
    "per cell, so 1,000 bars cost a few milliseconds instead of ~11,000 field resolutions)."
)
class CandleSeries:
    symbol: str
    interval: str
    columns: list[str]
    rows: JSON

    @classmethod
    def of(cls, symbol: str, interval: str, rows_json: str) -> CandleSeries:
        """From `read_api.queries.candle_series` (the rows already built as JSON)."""
        rows = cast(JSON, json.loads(rows_json))
        return cls(symbol=symbol, interval=interval, columns=list(CANDLE_COLUMNS), rows=rows)


@strawberry.type
class Candle:
    bucket: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    vwap: Decimal
    trade_count: int
    first_trade_id: BigInt
    last_trade_id: BigInt
