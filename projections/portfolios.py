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

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    TradeExecuted,
)
from domain.values import Side
from projections.base import Envelope, Projector, Tx, asset_decimals, ns_to_datetime

COST_PLACES = Decimal("1e-18")
ZERO = Decimal(0)


def average(old_cost: Decimal, old_qty: Decimal, price: Decimal, qty: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        total = (old_cost * old_qty + price * qty) / (old_qty + qty)
        return total.quantize(COST_PLACES, rounding=ROUND_HALF_EVEN)


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
    name = "portfolios"
    tables = ("balances", "positions", "last_prices", "venue_fees", "portfolio_orders")

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        if isinstance(event, FundsDeposited | FundsWithdrawn):
            decimals = await asset_decimals(tx, event.asset)
            sign = 1 if isinstance(event, FundsDeposited) else -1
            amount = Decimal(1).scaleb(-decimals) * (sign * event.amount_atoms)
            await self._move(tx, event.account_id, event.asset, amount, ZERO)
        elif isinstance(event, OrderAccepted):
            u = await self.units(tx, event.symbol)
            await tx.execute(
                "INSERT INTO portfolio_orders (order_id, account_id, symbol, side, price_ticks, "
                "budget, reserved_asset, reserved_atoms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                event.order_id,
                event.account_id,
                event.symbol,
                event.side.value,
                event.price_ticks,
                event.quote_budget_atoms > 0,
                event.reserved_asset,
                Decimal(event.reserved_atoms),
            )
            held = u.amount(event.reserved_asset, event.reserved_atoms)
            await self._move(tx, event.account_id, event.reserved_asset, -held, held)
        elif isinstance(event, OrderCanceled):
            u = await self.units(tx, event.symbol)
            await tx.execute("DELETE FROM portfolio_orders WHERE order_id = $1", event.order_id)
            freed = u.amount(event.released_asset, event.released_atoms)
            await self._move(tx, event.account_id, event.released_asset, freed, -freed)
        elif isinstance(event, OrderAmended):
            await self._amend(tx, event)
        elif isinstance(event, TradeExecuted):
            await self._trade(tx, event)

    async def _move(
        self, tx: Tx, account: str, asset: str, available: Decimal, reserved: Decimal
    ) -> None:
        await tx.execute(
            """
            INSERT INTO balances (account_id, asset, available, reserved) VALUES ($1, $2, $3, $4)
            ON CONFLICT (account_id, asset) DO UPDATE SET
                available = balances.available + EXCLUDED.available,
                reserved = balances.reserved + EXCLUDED.reserved
            """,
            account,
            asset,
            available,
            reserved,
        )

    async def _amend(self, tx: Tx, event: OrderAmended) -> None:
        u = await self.units(tx, event.symbol)
        row = await tx.fetchrow(
            "SELECT reserved_asset, reserved_atoms FROM portfolio_orders WHERE order_id = $1",
            event.order_id,
        )
        extra = event.reserved_atoms - int(row[1])
        await tx.execute(
            "UPDATE portfolio_orders SET price_ticks = $2, reserved_atoms = $3 WHERE order_id = $1",
            event.order_id,
            event.new_price_ticks,
            Decimal(event.reserved_atoms),
        )
        held = u.amount(row[0], extra)
        await self._move(tx, event.account_id, row[0], -held, held)

    async def _trade(self, tx: Tx, event: TradeExecuted) -> None:
        u = await self.units(tx, event.symbol)
        if event.taker_side is Side.BUY:
            buyer_id, seller_id = event.taker_order_id, event.maker_order_id
            buyer_fee, seller_fee = event.taker_fee_atoms, event.maker_fee_atoms
        else:
            buyer_id, seller_id = event.maker_order_id, event.taker_order_id
            buyer_fee, seller_fee = event.maker_fee_atoms, event.taker_fee_atoms
        buyer = await self._order(tx, buyer_id)
        seller = await self._order(tx, seller_id)
        base_atoms = event.qty_lots * u.base_atoms_per_lot
        cost = event.notional_atoms + buyer_fee
        release = cost if buyer[2] else event.qty_lots * u.buy_unit_cost(buyer[1])
        await self._spend(tx, buyer_id, release)
        await self._spend(tx, seller_id, base_atoms)
        q, b = u.quote_amount, u.base_amount
        await self._move(tx, buyer[0], u.quote, q(release - cost), -q(release))
        await self._move(tx, buyer[0], u.base, b(base_atoms), ZERO)
        await self._move(tx, seller[0], u.base, ZERO, -b(base_atoms))
        await self._move(tx, seller[0], u.quote, q(event.notional_atoms - seller_fee), ZERO)
        await tx.execute(
            "INSERT INTO venue_fees (asset, collected) VALUES ($1, $2) ON CONFLICT (asset) "
            "DO UPDATE SET collected = venue_fees.collected + EXCLUDED.collected",
            u.quote,
            q(buyer_fee + seller_fee),
        )
        price, qty = u.price(event.price_ticks), u.qty(event.qty_lots)
        await self._position(tx, buyer[0], event.symbol, qty, price, q(buyer_fee))
        await self._position(tx, seller[0], event.symbol, -qty, price, q(seller_fee))
        await tx.execute(
            "INSERT INTO last_prices (symbol, price, traded_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, "
            "traded_at = EXCLUDED.traded_at",
            event.symbol,
            price,
            ns_to_datetime(event.timestamp_ns),
        )

    async def _order(self, tx: Tx, order_id: str) -> tuple[str, int, bool]:
        row = await tx.fetchrow(
            "SELECT account_id, price_ticks, budget FROM portfolio_orders WHERE order_id = $1",
            order_id,
        )
        if row is None:
            raise LookupError(f"portfolios: a trade names order {order_id!r}, never accepted")
        return str(row[0]), int(row[1]), bool(row[2])

    async def _spend(self, tx: Tx, order_id: str, atoms: int) -> None:
        await tx.execute(
            "UPDATE portfolio_orders SET reserved_atoms = reserved_atoms - $2 WHERE order_id = $1",
            order_id,
            Decimal(atoms),
        )
        # A fully filled order has reserved nothing more: forget it.
        await tx.execute(
            "DELETE FROM portfolio_orders WHERE order_id = $1 AND reserved_atoms = 0", order_id
        )

    async def _position(
        self, tx: Tx, account: str, symbol: str, signed_qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        row = await tx.fetchrow(
            "SELECT quantity, avg_cost, realized_pnl FROM positions "
            "WHERE account_id = $1 AND symbol = $2",
            account,
            symbol,
        )
        quantity, avg_cost, realized = (ZERO, ZERO, ZERO) if row is None else tuple(row)
        quantity, avg_cost, realized = trade_position(
            quantity, avg_cost, realized, signed_qty, price
        )
        await tx.execute(
            """
            INSERT INTO positions (account_id, symbol, quantity, avg_cost, realized_pnl,
                fees_paid) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (account_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity,
                avg_cost = EXCLUDED.avg_cost, realized_pnl = EXCLUDED.realized_pnl,
                fees_paid = positions.fees_paid + EXCLUDED.fees_paid
            """,
            account,
            symbol,
            quantity,
            avg_cost,
            realized,
            fee,
        )

