"""Portfolios: per account and asset the available and reserved funds; per account and symbol
the position, its average cost, realized P&L and fees; the last price for unrealized P&L.

Balances follow the core's reservation rules exactly (docs/events.md): an accepted order
moves its reservation from available to reserved, a fill releases what the filled lots
reserved and settles notional and fees, a cancel releases what is left, an amend sets the
order's new reservation. Venue fees collect in `venue_fees`.

Positions use the average-cost method on traded quantity only (deposits and withdrawals of
the base asset carry no price and do not move a position): adding to a position re-averages
the cost (rounded half-even to 18 places), reducing it realizes `(price - avg_cost) * qty`
(sign-adjusted for a short), crossing zero opens the rest at the trade price. Fees are kept
apart in `fees_paid`. `positions_valued` (a view) adds `(last_price - avg_cost) * quantity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    TradeExecuted,
)
from domain.values import Side
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
    asset_decimals,
    delete_write,
    insert_template,
    rows_write,
    update_template,
    write_all,
)

COST_PLACES = Decimal("1e-18")
ORDER_COLUMNS = (
    ("order_id", TEXT), ("account_id", TEXT), ("symbol", TEXT), ("side", TEXT),
    ("price_ticks", BIGINT), ("budget", BOOLEAN), ("reserved_asset", TEXT),
    ("reserved_atoms", NUMERIC),
)  # fmt: skip
# New orders are inserted, stored ones updated (cheaper than an upsert: see orders.py).
INSERT_ORDERS = insert_template("portfolio_orders", ORDER_COLUMNS)
UPDATED_ORDER_COLUMNS = (ORDER_COLUMNS[0], ORDER_COLUMNS[4], ORDER_COLUMNS[7])
UPDATE_ORDERS = update_template("portfolio_orders", "order_id", UPDATED_ORDER_COLUMNS)
BALANCE_COLUMNS = (
    ("account_id", TEXT),
    ("asset", TEXT),
    ("available", NUMERIC),
    ("reserved", NUMERIC),
)
UPSERT_BALANCES = insert_template(
    "balances",
    BALANCE_COLUMNS,
    "ON CONFLICT (account_id, asset) DO UPDATE SET "
    "available = balances.available + EXCLUDED.available, "
    "reserved = balances.reserved + EXCLUDED.reserved",
)
FEE_COLUMNS = (("asset", TEXT), ("collected", NUMERIC))
UPSERT_FEES = insert_template(
    "venue_fees",
    FEE_COLUMNS,
    "ON CONFLICT (asset) DO UPDATE SET collected = venue_fees.collected + EXCLUDED.collected",
)
POSITION_COLUMNS = (
    ("account_id", TEXT), ("symbol", TEXT), ("quantity", NUMERIC), ("avg_cost", NUMERIC),
    ("realized_pnl", NUMERIC), ("fees_paid", NUMERIC),
)  # fmt: skip
UPSERT_POSITIONS = insert_template(
    "positions",
    POSITION_COLUMNS,
    "ON CONFLICT (account_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, "
    "avg_cost = EXCLUDED.avg_cost, realized_pnl = EXCLUDED.realized_pnl, "
    "fees_paid = positions.fees_paid + EXCLUDED.fees_paid",
)
LAST_COLUMNS = (("symbol", TEXT), ("price", NUMERIC), ("traded_at", TIME))
UPSERT_LAST = insert_template(
    "last_prices",
    LAST_COLUMNS,
    "ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, traded_at = EXCLUDED.traded_at",
)
ZERO = Decimal(0)
WIDE = Context(prec=80)  # the average's arithmetic (a fixed context: cheaper than localcontext)


def average(old_cost: Decimal, old_qty: Decimal, price: Decimal, qty: Decimal) -> Decimal:
    w = WIDE
    spent = w.add(w.multiply(old_cost, old_qty), w.multiply(price, qty))
    total = w.divide(spent, w.add(old_qty, qty))
    return total.quantize(COST_PLACES, ROUND_HALF_EVEN, w)


def trade_position(
    quantity: Decimal, avg_cost: Decimal, realized: Decimal, signed_qty: Decimal, price: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, avg_cost, realized P&L) after trading `signed_qty` (+ buy, - sell) at `price`."""
    if quantity == 0 or (quantity > 0) == (signed_qty > 0):
        return (
            quantity + signed_qty,
            average(avg_cost, abs(quantity), price, abs(signed_qty)),
            realized,
        )
    closing = min(abs(signed_qty), abs(quantity))
    direction = 1 if quantity > 0 else -1
    realized += (price - avg_cost) * closing * direction
    after = quantity + signed_qty
    if after == 0:
        return ZERO, ZERO, realized
    if (after > 0) != (quantity > 0):
        return after, price, realized  # crossed zero: the rest opens at this price
    return after, avg_cost, realized


class PortfoliosProjector(Projector):
    """Per batch: the live orders and positions the batch touches are read once and changed
    in memory; balance and fee changes are summed in integer atoms. `flush` writes each table
    with one multi-row statement (balances and fees are added in SQL, exactly)."""

    name = "portfolios"
    tables = ("balances", "positions", "last_prices", "venue_fees", "portfolio_orders")
    handles = frozenset({TradeExecuted, OrderAccepted, OrderCanceled, OrderAmended,
                         FundsDeposited, FundsWithdrawn})  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self._decimals: dict[str, int] = {}  # asset -> decimals (fixed by its first listing)
        self.reset()

    def reset(self) -> None:
        # order id -> [account, symbol, side, price_ticks, budget, reserved_asset, atoms]
        self._orders: dict[str, list[Any] | None] = {}
        self._born: set[str] = set()  # accepted in this batch: no portfolio_orders row yet
        self._changed: set[str] = set()
        self._gone: set[str] = set()
        self._balances: dict[tuple[str, str], list[int]] = {}  # -> [available, reserved] atoms
        # (account, symbol) -> [quantity, avg_cost, realized, fee atoms in this batch, quote]
        self._positions: dict[tuple[str, str], list[Any]] = {}
        self._fees: dict[str, int] = {}
        self._last: dict[str, tuple[Decimal, int]] = {}

    async def prepare(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:
        for u in self._units.values():
            self._decimals.setdefault(u.base, u.base_decimals)
            self._decimals.setdefault(u.quote, u.quote_decimals)
        orders: set[str] = set()
        born: set[str] = set()  # accepted in this batch: no stored row to read
        positions: set[tuple[str, str]] = set()
        for envelope in envelopes:
            event = envelope.event
            if type(event) is OrderAccepted:
                born.add(event.order_id)
            elif type(event) is TradeExecuted:
                orders.add(event.maker_order_id)
                orders.add(event.taker_order_id)
                positions.add((event.maker_account_id, event.symbol))
                positions.add((event.taker_account_id, event.symbol))
            elif type(event) is OrderAmended:
                orders.add(event.order_id)
            elif (
                type(event) is FundsDeposited or type(event) is FundsWithdrawn
            ) and event.asset not in self._decimals:
                self._decimals[event.asset] = await asset_decimals(tx, event.asset)
        orders.difference_update(self._orders)
        orders.difference_update(born)  # an order is accepted before anything refers to it
        if orders:
            for row in await tx.fetch(
                "SELECT order_id, account_id, symbol, side, price_ticks, budget, reserved_asset, "
                "reserved_atoms FROM portfolio_orders WHERE order_id = ANY($1::text[])",
                list(orders),
            ):
                self._orders[row[0]] = [row[1], row[2], row[3], int(row[4]), bool(row[5]),
                                        row[6], int(row[7])]  # fmt: skip
        positions.difference_update(self._positions)
        if positions:
            for key in positions:
                self._positions[key] = [ZERO, ZERO, ZERO, 0, None]
            for row in await tx.fetch(
                "SELECT p.account_id, p.symbol, p.quantity, p.avg_cost, p.realized_pnl "
                "FROM unnest($1::text[], $2::text[]) AS k(account_id, symbol) "
                "JOIN positions p USING (account_id, symbol)",
                [k[0] for k in positions],
                [k[1] for k in positions],
            ):
                self._positions[(row[0], row[1])] = [row[2], row[3], row[4], 0, None]

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is TradeExecuted:
            self._trade(event)
        elif type(event) is OrderAccepted:
            self._orders[event.order_id] = [
                event.account_id, event.symbol, VALUE[event.side], event.price_ticks,
                event.quote_budget_atoms > 0, event.reserved_asset, event.reserved_atoms,
            ]  # fmt: skip
            self._changed.add(event.order_id)
            self._born.add(event.order_id)
            self._move(event.account_id, event.reserved_asset, -event.reserved_atoms,
                       event.reserved_atoms)  # fmt: skip
        elif type(event) is OrderCanceled:
            self._drop(event.order_id)
            freed = event.released_atoms
            self._move(event.account_id, event.released_asset, freed, -freed)
        elif type(event) is OrderAmended:
            order = self._order(event.order_id)
            extra = event.reserved_atoms - order[6]
            order[3], order[6] = event.new_price_ticks, event.reserved_atoms
            self._changed.add(event.order_id)
            self._move(event.account_id, order[5], -extra, extra)
        elif type(event) is FundsDeposited:
            self._move(event.account_id, event.asset, event.amount_atoms, 0)
        elif type(event) is FundsWithdrawn:
            self._move(event.account_id, event.asset, -event.amount_atoms, 0)

    def _move(self, account: str, asset: str, available: int, reserved: int) -> None:
        entry = self._balances.get((account, asset))
        if entry is None:
            self._balances[(account, asset)] = [available, reserved]
        else:
            entry[0] += available
            entry[1] += reserved

    def _order(self, order_id: str) -> list[Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise LookupError(f"portfolios: an event names order {order_id!r}, not live")
        return order

    def _drop(self, order_id: str) -> None:
        self._orders[order_id] = None
        self._changed.discard(order_id)
        self._gone.add(order_id)

    def _spend(self, order_id: str, order: list[Any], atoms: int) -> None:
        order[6] -= atoms
        if order[6] == 0:  # a fully filled order has reserved nothing more: forget it
            self._drop(order_id)
        else:
            self._changed.add(order_id)

    def _trade(self, event: TradeExecuted) -> None:
        u = self.unit(event.symbol)
        if event.taker_side is Side.BUY:
            buyer_id, seller_id = event.taker_order_id, event.maker_order_id
            buyer_fee, seller_fee = event.taker_fee_atoms, event.maker_fee_atoms
        else:
            buyer_id, seller_id = event.maker_order_id, event.taker_order_id
            buyer_fee, seller_fee = event.maker_fee_atoms, event.taker_fee_atoms
        buyer, seller = self._order(buyer_id), self._order(seller_id)
        base_atoms = event.qty_lots * u.base_atoms_per_lot
        cost = event.notional_atoms + buyer_fee
        release = cost if buyer[4] else event.qty_lots * u.buy_unit_cost(buyer[3])
        self._spend(buyer_id, buyer, release)
        self._spend(seller_id, seller, base_atoms)
        self._move(buyer[0], u.quote, release - cost, -release)
        self._move(buyer[0], u.base, base_atoms, 0)
        self._move(seller[0], u.base, 0, -base_atoms)
        self._move(seller[0], u.quote, event.notional_atoms - seller_fee, 0)
        self._fees[u.quote] = self._fees.get(u.quote, 0) + buyer_fee + seller_fee
        price, qty = u.tick_size * event.price_ticks, u.lot_size * event.qty_lots
        self._position(buyer[0], event.symbol, qty, price, buyer_fee, u.quote)
        self._position(seller[0], event.symbol, -qty, price, seller_fee, u.quote)
        self._last[event.symbol] = (price, event.timestamp_ns)

    def _position(
        self, account: str, symbol: str, signed_qty: Decimal, price: Decimal, fee: int, quote: str
    ) -> None:
        position = self._positions.get((account, symbol))
        if position is None:
            raise LookupError(f"portfolios: position {account}/{symbol} was not prepared")
        position[0], position[1], position[2] = trade_position(
            position[0], position[1], position[2], signed_qty, price
        )
        position[3] += fee
        position[4] = quote

    def _amount(self, asset: str, atoms: int) -> Decimal:
        return Decimal(atoms).scaleb(-self._decimals[asset])

    async def flush(self, tx: Tx) -> None:
        born = self._born
        new, old = [], []
        for i in self._changed:
            o = self._orders[i]
            if o is None:
                continue
            if i in born:
                new.append((i, *o[:6], Decimal(o[6])))
            else:
                old.append((i, o[3], Decimal(o[6])))
        amount = self._amount
        balances = [(a, asset, amount(asset, d[0]), amount(asset, d[1]))
                    for (a, asset), d in self._balances.items()]  # fmt: skip
        fees = [(a, amount(a, n)) for a, n in self._fees.items()]
        positions = [(a, symbol, p[0], p[1], p[2], amount(p[4], p[3]))
                     for (a, symbol), p in self._positions.items() if p[4] is not None]  # fmt: skip
        last = [(s, p, ns) for s, (p, ns) in self._last.items()]
        # Five tables, one statement: the deleted and the upserted orders are different ids
        # (an order leaves `_changed` when it is dropped).
        await write_all(
            tx,
            (
                delete_write("portfolio_orders", "order_id", self._gone - born),
                rows_write(INSERT_ORDERS, ORDER_COLUMNS, new),
                rows_write(UPDATE_ORDERS, UPDATED_ORDER_COLUMNS, old),
                rows_write(UPSERT_BALANCES, BALANCE_COLUMNS, balances),
                rows_write(UPSERT_FEES, FEE_COLUMNS, fees),
                rows_write(UPSERT_POSITIONS, POSITION_COLUMNS, positions),
                rows_write(UPSERT_LAST, LAST_COLUMNS, last),
            ),
        )
        # Live orders and positions stay in memory for the next batch (see `Projector`);
        # the per-batch changes (balances, fees, last prices, fee atoms) start again.
        kept_orders, kept_positions = self._orders, self._positions
        self.reset()
        if len(kept_orders) + len(kept_positions) <= CACHE_LIMIT:
            self._orders = {i: o for i, o in kept_orders.items() if o is not None}
            self._positions = {k: [p[0], p[1], p[2], 0, None] for k, p in kept_positions.items()}
