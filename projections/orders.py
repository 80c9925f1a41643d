"""Orders: every accepted order with its status, fills and average fill price; rejections.

Status moves `new` (accepted, deciding) → `open` / `partially_filled` (resting) → `filled`
or `canceled`. Open orders are those in `new`, `open` or `partially_filled`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from domain.events import (
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    OrderRested,
    TradeExecuted,
)
from projections.base import (
    BIGINT,
    BOOLEAN,
    CACHE_LIMIT,
    NUMERIC,
    TEXT,
    TIME,
    VALUE,
    Envelope,
    Projector,
    Tx,
    Units,
    insert_template,
    rows_write,
    update_template,
    write_all,
)

PRICE_PLACES = Decimal("1e-12")
ZERO = Decimal(0)
EXACT = Context(prec=200)  # sums the database used to do exactly
WIDE = Context(prec=80)  # average fill price: computed wide, then rounded to 12 places

COLUMNS = (
    ("order_id", TEXT), ("account_id", TEXT), ("symbol", TEXT), ("client_order_id", TEXT),
    ("side", TEXT), ("order_type", TEXT), ("time_in_force", TEXT), ("post_only", BOOLEAN),
    ("price", NUMERIC), ("quantity", NUMERIC), ("quote_budget", NUMERIC),
    ("filled_qty", NUMERIC), ("remaining_qty", NUMERIC), ("filled_notional", NUMERIC),
    ("fees", NUMERIC), ("avg_fill_price", NUMERIC), ("status", TEXT), ("cancel_reason", TEXT),
    ("created_at", TIME), ("updated_at", TIME),
)  # fmt: skip
(ACCOUNT, SYMBOL, PRICE, QUANTITY, BUDGET, FILLED, REMAINING, NOTIONAL, FEES, AVERAGE, STATUS,
 REASON, UPDATED) = (1, 2, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19)  # fmt: skip
# Orders first seen in a batch are inserted, the others (read back by `prepare` or kept
# from the last batch, so known to be stored) updated: a plain INSERT costs about a quarter
# less than an upsert on PostgreSQL (no speculative insertion), and the orders' write is the
# read side's most expensive statement.
INSERT = insert_template("orders", COLUMNS)
UPDATED_COLUMNS = (COLUMNS[0], *(c for c in COLUMNS[8:] if c[0] != "created_at"))
UPDATE = update_template("orders", "order_id", UPDATED_COLUMNS)
_UPDATED = (0, *(i for i, c in enumerate(COLUMNS) if i >= 8 and c[0] != "created_at"))
# The stored row, as `project` keeps it (times in integer nanoseconds).
SELECT = (
    "SELECT "
    + ", ".join(
        f"(extract(epoch FROM {c}) * 1000000000)::bigint" if kind == TIME else c
        for c, kind in COLUMNS
    )
    + " FROM orders WHERE order_id = ANY($1::text[])"
)
FILL_COLUMNS = (
    ("order_id", TEXT), ("trade_id", BIGINT), ("symbol", TEXT), ("liquidity", TEXT),
    ("price", NUMERIC), ("quantity", NUMERIC), ("fee", NUMERIC), ("executed_at", TIME),
)  # fmt: skip
INSERT_FILLS = insert_template("order_fills", FILL_COLUMNS)
REJECTION_COLUMNS = (
    ("position", BIGINT), ("order_id", TEXT), ("account_id", TEXT), ("symbol", TEXT),
    ("client_order_id", TEXT), ("reason", TEXT), ("rejected_at", TIME),
)  # fmt: skip
INSERT_REJECTIONS = insert_template("order_rejections", REJECTION_COLUMNS)
REFERS = (OrderRested, OrderCanceled, OrderAmended)  # updates of an order by its id
OPEN = frozenset({"new", "open", "partially_filled"})


class OrdersProjector(Projector):
    """Per batch: the orders the batch touches are read once, changed in memory and written
    back with one multi-row upsert; fills and rejections are appended in one INSERT each."""

    name = "orders"
    tables = ("orders", "order_fills", "order_rejections")
    handles = frozenset({TradeExecuted, OrderAccepted, OrderRejected, *REFERS})

    def __init__(self) -> None:
        super().__init__()
        self._orders: dict[str, list[Any] | None] = {}  # the orders table's row; None: absent
        self._born: set[str] = set()  # accepted in this batch: no row in the orders table yet
        self._changed: set[str] = set()
        self._filled: set[str] = set()  # their average fill price is computed at flush
        self._fills: list[tuple[Any, ...]] = []
        self._rejections: list[tuple[Any, ...]] = []

    async def prepare(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:
        wanted: set[str] = set()
        born: set[str] = set()  # accepted in this batch: no stored row to read
        for envelope in envelopes:
            event = envelope.event
            if type(event) is OrderAccepted:
                born.add(event.order_id)
            elif type(event) is TradeExecuted:
                wanted.add(event.maker_order_id)
                wanted.add(event.taker_order_id)
            elif type(event) in REFERS:
                wanted.add(event.order_id)  # type: ignore[attr-defined]
        wanted.difference_update(self._orders)
        wanted.difference_update(born)  # an order is accepted before anything refers to it
        if not wanted:
            return
        for order_id in wanted:
            self._orders[order_id] = None
        for row in await tx.fetch(SELECT, list(wanted)):
            self._orders[row[0]] = list(row)

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is TradeExecuted:
            u = self.unit(event.symbol)
            maker_fee, taker_fee = event.maker_fee_atoms, event.taker_fee_atoms
            self._fill(event, event.maker_order_id, "maker", u.quote_atom * maker_fee, u)
            self._fill(event, event.taker_order_id, "taker", u.quote_atom * taker_fee, u)
        elif type(event) is OrderAccepted:
            u = self.unit(event.symbol)
            quantity, at = u.lot_size * event.qty_lots, event.timestamp_ns
            self._orders[event.order_id] = [
                event.order_id, event.account_id, event.symbol, event.client_order_id,
                VALUE[event.side], VALUE[event.order_type], VALUE[event.time_in_force],
                event.post_only, u.tick_size * event.price_ticks, quantity,
                u.quote_atom * event.quote_budget_atoms, ZERO, quantity, ZERO, ZERO, None,
                "new", None, at, at,
            ]  # fmt: skip
            self._changed.add(event.order_id)
            self._born.add(event.order_id)
        elif type(event) is OrderRejected:
            self._rejections.append(
                (envelope.position, event.order_id, event.account_id, event.symbol,
                 event.client_order_id, VALUE[event.reason], event.timestamp_ns)
            )  # fmt: skip
        elif type(event) is OrderRested:
            if order := self._touch(event.order_id, event.timestamp_ns):
                order[STATUS] = "partially_filled" if order[FILLED] > 0 else "open"
        elif type(event) is OrderCanceled:
            if order := self._touch(event.order_id, event.timestamp_ns):
                order[STATUS], order[REASON] = "canceled", VALUE[event.reason]
        elif type(event) is OrderAmended and (
            order := self._touch(event.order_id, event.timestamp_ns)
        ):
            u = self.unit(event.symbol)
            remaining = u.qty(event.new_qty_lots)
            order[PRICE] = u.price(event.new_price_ticks)
            order[QUANTITY] = EXACT.add(order[FILLED], remaining)
            order[REMAINING] = remaining

    def _touch(self, order_id: str, at: int) -> list[Any] | None:
        """The order an update names, marked changed at `at`; None (the stored UPDATE would
        have matched no row) when it was never accepted."""
        order = self._orders.get(order_id)
        if order is not None:
            order[UPDATED] = at
            self._changed.add(order_id)
        return order

    def _fill(
        self, event: TradeExecuted, order_id: str, liquidity: str, fee: Decimal, u: Units
    ) -> None:
        price, qty = u.tick_size * event.price_ticks, u.lot_size * event.qty_lots
        at = event.timestamp_ns
        self._fills.append((order_id, event.trade_id, event.symbol, liquidity, price, qty, fee, at))
        order = self._orders.get(order_id)
        if order is None:
            raise LookupError(f"orders: a trade names order {order_id!r}, never accepted")
        filled = order[FILLED] + qty
        by_budget = order[BUDGET] > 0
        remaining = Decimal(0) if by_budget else order[QUANTITY] - filled
        if not by_budget and remaining == 0:
            status = "filled"
        elif order[STATUS] == "new":
            status = "new"
        else:
            status = "partially_filled"
        order[FILLED], order[REMAINING] = filled, remaining
        order[NOTIONAL] += u.quote_atom * event.notional_atoms
        order[FEES] = EXACT.add(order[FEES], fee)
        order[STATUS], order[UPDATED] = status, at
        self._changed.add(order_id)
        self._filled.add(order_id)

    async def flush(self, tx: Tx) -> None:
        orders = self._orders
        for order_id in self._filled:
            # The average of all fills so far: one division per order and batch, not per fill.
            order = orders[order_id]
            if order is not None:
                order[AVERAGE] = WIDE.divide(order[NOTIONAL], order[FILLED]).quantize(
                    PRICE_PLACES, ROUND_HALF_EVEN, WIDE
                )
        born = self._born
        new, old = [], []
        for i in self._changed:
            row = orders[i]
            if row is not None:
                if i in born:
                    new.append(row)
                else:  # read back by `prepare` or kept from the last batch: stored
                    old.append([row[k] for k in _UPDATED])
        await write_all(  # three tables, one statement (new and old orders are different rows)
            tx,
            (
                rows_write(INSERT, COLUMNS, new),
                rows_write(UPDATE, UPDATED_COLUMNS, old),
                rows_write(INSERT_FILLS, FILL_COLUMNS, self._fills),
                rows_write(INSERT_REJECTIONS, REJECTION_COLUMNS, self._rejections),
            ),
        )
        self._changed, self._filled, self._fills, self._rejections = set(), set(), [], []
        # Open orders stay in memory for the next batch (see `Projector`); closed ones go.
        self._orders = (
            {i: o for i, o in orders.items() if o is not None and o[STATUS] in OPEN}
            if len(orders) <= CACHE_LIMIT
            else {}
        )
        self._born = set()

    def reset(self) -> None:
        self._orders = {}
        self._born = set()
        self._changed = set()
        self._filled = set()
        self._fills = []
        self._rejections = []
