"""The L2 order book: aggregated quantity and order count per price level, per symbol.

Only resting orders are in the book: an order enters with OrderRested (its open remainder),
shrinks when it is the maker of a trade, moves or shrinks with OrderAmended, and leaves when
filled or canceled. `top_of_book` reads the best N levels of each side.
"""

from __future__ import annotations

from typing import Any

from domain.events import OrderAmended, OrderCanceled, OrderRested, TradeExecuted
from projections.base import Envelope, Projector, Tx


class OrderBookProjector(Projector):
    name = "order_book"
    tables = ("order_book", "book_orders")

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        if isinstance(event, OrderRested):
            await tx.execute(
                "INSERT INTO book_orders (order_id, symbol, side, price_ticks, open_lots) "
                "VALUES ($1, $2, $3, $4, $5)",
                event.order_id,
                event.symbol,
                event.side.value,
                event.price_ticks,
                event.qty_lots,
            )
            await self._level(tx, event.symbol, event.side.value, event.price_ticks,
                              event.qty_lots, 1)  # fmt: skip
        elif isinstance(event, TradeExecuted):
            await self._reduce(tx, event.maker_order_id, event.qty_lots)
        elif isinstance(event, OrderCanceled):
            await self._reduce(tx, event.order_id, None)
        elif isinstance(event, OrderAmended):
            row = await tx.fetchrow(
                "SELECT symbol, side, price_ticks, open_lots FROM book_orders WHERE order_id = $1",
                event.order_id,
            )
            if row is None:
                return
            symbol, side, price, lots = row[0], row[1], int(row[2]), int(row[3])
            await self._level(tx, symbol, side, price, -lots, -1)
            await self._level(tx, symbol, side, event.new_price_ticks, event.new_qty_lots, 1)
            await tx.execute(
                "UPDATE book_orders SET price_ticks = $2, open_lots = $3 WHERE order_id = $1",
                event.order_id,
                event.new_price_ticks,
                event.new_qty_lots,
            )

    async def _reduce(self, tx: Tx, order_id: str, lots: int | None) -> None:
        """Take `lots` (all when None) off a resting order; not resting means nothing to do."""
        row = await tx.fetchrow(
            "SELECT symbol, side, price_ticks, open_lots FROM book_orders WHERE order_id = $1",
            order_id,
        )
        if row is None:
            return
        open_lots = int(row[3])
        taken = open_lots if lots is None else lots
        gone = taken >= open_lots
        await self._level(tx, row[0], row[1], int(row[2]), -taken, -1 if gone else 0)
        if gone:
            await tx.execute("DELETE FROM book_orders WHERE order_id = $1", order_id)
        else:
            await tx.execute(
                "UPDATE book_orders SET open_lots = open_lots - $2 WHERE order_id = $1",
                order_id,
                taken,
            )

    async def _level(
        self, tx: Tx, symbol: str, side: str, price_ticks: int, lots: int, orders: int
    ) -> None:
        u = await self.units(tx, symbol)
        await tx.execute(
            """
            INSERT INTO order_book (symbol, side, price_ticks, price, quantity, order_count)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (symbol, side, price_ticks) DO UPDATE SET
                quantity = order_book.quantity + EXCLUDED.quantity,
                order_count = order_book.order_count + EXCLUDED.order_count
            """,
            symbol,
            side,
            price_ticks,
            u.price(price_ticks),
            u.qty(lots),
            orders,
        )
        await tx.execute(
            "DELETE FROM order_book WHERE symbol = $1 AND side = $2 AND price_ticks = $3 "
            "AND order_count = 0",
            symbol,
            side,
            price_ticks,
        )


async def top_of_book(tx: Tx, symbol: str, depth: int = 10) -> dict[str, list[Any]]:
    """The best `depth` levels per side: bids highest first, asks lowest first."""
    bids = await tx.fetch(
        "SELECT price, quantity, order_count FROM order_book WHERE symbol = $1 AND side = 'buy' "
        "ORDER BY price_ticks DESC LIMIT $2",
        symbol,
        depth,
    )
    asks = await tx.fetch(
        "SELECT price, quantity, order_count FROM order_book WHERE symbol = $1 "
        "AND side = 'sell' ORDER BY price_ticks LIMIT $2",
        symbol,
        depth,
    )
    return {"bids": [tuple(r) for r in bids], "asks": [tuple(r) for r in asks]}
