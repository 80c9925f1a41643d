"""The L2 order book: aggregated quantity and order count per price level, per symbol.

Only resting orders are in the book: an order enters with OrderRested (its open remainder),
shrinks when it is the maker of a trade, moves or shrinks with OrderAmended, and leaves when
filled or canceled. `top_of_book` reads the best N levels of each side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.events import (
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRested,
    TradeExecuted,
)
from projections.base import (
    BIGINT,
    CACHE_LIMIT,
    INTEGER,
    NUMERIC,
    TEXT,
    VALUE,
    Envelope,
    Projector,
    Tx,
    delete_write,
    insert_template,
    rows_write,
    update_template,
    write_all,
)

LEVEL_COLUMNS = (
    ("symbol", TEXT), ("side", TEXT), ("price_ticks", BIGINT), ("price", NUMERIC),
    ("quantity", NUMERIC), ("order_count", INTEGER),
)  # fmt: skip
UPSERT_LEVELS = insert_template(
    "order_book",
    LEVEL_COLUMNS,
    "ON CONFLICT (symbol, side, price_ticks) DO UPDATE SET "
    "quantity = order_book.quantity + EXCLUDED.quantity, "
    "order_count = order_book.order_count + EXCLUDED.order_count",
)
ORDER_COLUMNS = (("order_id", TEXT), ("symbol", TEXT), ("side", TEXT), ("price_ticks", BIGINT),
                 ("open_lots", BIGINT))  # fmt: skip
# New resting orders are inserted, stored ones updated (cheaper than an upsert: orders.py).
INSERT_ORDERS = insert_template("book_orders", ORDER_COLUMNS)
UPDATED_ORDER_COLUMNS = (ORDER_COLUMNS[0], ORDER_COLUMNS[3], ORDER_COLUMNS[4])
UPDATE_ORDERS = update_template("book_orders", "order_id", UPDATED_ORDER_COLUMNS)
Resting = list[Any]  # [symbol, side, price_ticks, open_lots] of an order in the book
Level = tuple[str, str, int]  # symbol, side, price_ticks


class OrderBookProjector(Projector):
    """Per batch: the resting orders the batch touches are read once, changed in memory, and
    written back (deleted, upserted); level changes are summed and applied in one upsert."""

    name = "order_book"
    tables = ("order_book", "book_orders")
    # OrderAccepted only tells `prepare` that an order is new (it has no stored row).
    handles = frozenset({OrderAccepted, OrderRested, TradeExecuted, OrderCanceled, OrderAmended})

    def __init__(self) -> None:
        super().__init__()
        self._orders: dict[str, Resting | None] = {}  # None: not (or no longer) in the book
        self._stored: set[str] = set()  # ids that have a book_orders row
        self._touched: set[str] = set()  # ids whose book_orders row this batch changes
        self._levels: dict[Level, list[int]] = {}  # -> [lots delta, order count delta]

    async def prepare(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:
        wanted: set[str] = set()
        # Accepted, or rested, in this batch before anything referred to them: no stored row
        # the batch needs (an order has a book row only once it rested).
        new: set[str] = set()
        for envelope in envelopes:
            event = envelope.event
            if type(event) is OrderAccepted:
                new.add(event.order_id)
            elif type(event) is OrderRested:
                if event.order_id not in wanted:
                    new.add(event.order_id)
            else:
                order_id: str
                if type(event) is TradeExecuted:
                    order_id = event.maker_order_id
                elif type(event) is OrderCanceled or type(event) is OrderAmended:
                    order_id = event.order_id
                else:
                    continue
                if order_id not in new:
                    wanted.add(order_id)
        wanted.difference_update(self._orders)
        if not wanted:
            return
        for order_id in wanted:
            self._orders[order_id] = None
        for row in await tx.fetch(
            "SELECT order_id, symbol, side, price_ticks, open_lots FROM book_orders "
            "WHERE order_id = ANY($1::text[])",
            list(wanted),
        ):
            self._orders[row[0]] = [row[1], row[2], int(row[3]), int(row[4])]
            self._stored.add(row[0])

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is OrderRested:
            side = VALUE[event.side]
            self._orders[event.order_id] = [event.symbol, side, event.price_ticks, event.qty_lots]
            self._touched.add(event.order_id)
            self._level(event.symbol, side, event.price_ticks, event.qty_lots, 1)
        elif type(event) is TradeExecuted:
            self._reduce(event.maker_order_id, event.qty_lots)
        elif type(event) is OrderCanceled:
            self._reduce(event.order_id, None)
        elif type(event) is OrderAmended:
            order = self._orders.get(event.order_id)
            if order is None:
                return
            symbol, side, price, lots = order
            self._level(symbol, side, price, -lots, -1)
            self._level(symbol, side, event.new_price_ticks, event.new_qty_lots, 1)
            order[2], order[3] = event.new_price_ticks, event.new_qty_lots
            self._touched.add(event.order_id)

    def _reduce(self, order_id: str, lots: int | None) -> None:
        """Take `lots` (all when None) off a resting order; not resting means nothing to do."""
        order = self._orders.get(order_id)
        if order is None:
            return
        open_lots = order[3]
        taken = open_lots if lots is None else lots
        gone = taken >= open_lots
        self._touched.add(order_id)
        self._level(order[0], order[1], order[2], -taken, -1 if gone else 0)
        if gone:
            self._orders[order_id] = None
        else:
            order[3] = open_lots - taken

    def _level(self, symbol: str, side: str, price_ticks: int, lots: int, orders: int) -> None:
        delta = self._levels.get((symbol, side, price_ticks))
        if delta is None:
            self._levels[(symbol, side, price_ticks)] = [lots, orders]
        else:
            delta[0] += lots
            delta[1] += orders

    async def flush(self, tx: Tx) -> None:
        touched = [(i, self._orders[i]) for i in self._touched]
        gone = [i for i, o in touched if o is None and i in self._stored]
        stored = self._stored
        new = [(i, *o) for i, o in touched if o is not None and i not in stored]
        old = [(i, o[2], o[3]) for i, o in touched if o is not None and i in stored]
        levels = []
        for (symbol, side, ticks), (lots, orders) in self._levels.items():
            if lots or orders:
                u = self.unit(symbol)
                levels.append((symbol, side, ticks, u.price(ticks), u.qty(lots), orders))
        # One statement for the resting orders (gone and resting are different ids) and the
        # level changes; then the levels left empty go (they must see the upsert's result).
        await write_all(
            tx,
            (
                delete_write("book_orders", "order_id", gone),
                rows_write(INSERT_ORDERS, ORDER_COLUMNS, new),
                rows_write(UPDATE_ORDERS, UPDATED_ORDER_COLUMNS, old),
                rows_write(UPSERT_LEVELS, LEVEL_COLUMNS, levels),
            ),
        )
        # Only a level that lost orders can have none left.
        emptied = [r for r in levels if r[5] < 0]
        if emptied:
            await tx.execute(
                "DELETE FROM order_book WHERE (symbol, side, price_ticks) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])) "
                "AND order_count = 0",
                [r[0] for r in emptied],
                [r[1] for r in emptied],
                [r[2] for r in emptied],
            )
        # Resting orders stay in memory for the next batch (see `Projector`): all stored now.
        kept = self._orders
        self.reset()
        if len(kept) <= CACHE_LIMIT:
            self._orders = {i: o for i, o in kept.items() if o is not None}
            self._stored = set(self._orders)

    def reset(self) -> None:
        self._orders = {}
        self._stored = set()
        self._touched = set()
        self._levels = {}


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
