"""Orders: every accepted order with its status, fills and average fill price; rejections.

Status moves `new` (accepted, deciding) → `open` / `partially_filled` (resting) → `filled`
or `canceled`. Open orders are those in `new`, `open` or `partially_filled`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from domain.events import (
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    OrderRested,
    TradeExecuted,
)
from projections.base import Envelope, Projector, Tx, Units, ns_to_datetime

PRICE_PLACES = Decimal("1e-12")


class OrdersProjector(Projector):
    name = "orders"
    tables = ("orders", "order_fills", "order_rejections")

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        at = ns_to_datetime(event.timestamp_ns)
        if isinstance(event, OrderAccepted):
            u = await self.units(tx, event.symbol)
            await tx.execute(
                """
                INSERT INTO orders (order_id, account_id, symbol, client_order_id, side,
                    order_type, time_in_force, post_only, price, quantity, quote_budget,
                    filled_qty, remaining_qty, filled_notional, fees, avg_fill_price, status,
                    cancel_reason, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $10, 0, 0, NULL,
                    'new', NULL, $12, $12)
                """,
                event.order_id,
                event.account_id,
                event.symbol,
                event.client_order_id,
                event.side.value,
                event.order_type.value,
                event.time_in_force.value,
                event.post_only,
                u.price(event.price_ticks),
                u.qty(event.qty_lots),
                u.quote_amount(event.quote_budget_atoms),
                at,
            )
        elif isinstance(event, OrderRejected):
            await tx.execute(
                "INSERT INTO order_rejections (position, order_id, account_id, symbol, "
                "client_order_id, reason, rejected_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                envelope.position,
                event.order_id,
                event.account_id,
                event.symbol,
                event.client_order_id,
                event.reason.value,
                at,
            )
        elif isinstance(event, OrderRested):
            await tx.execute(
                "UPDATE orders SET status = CASE WHEN filled_qty > 0 THEN 'partially_filled' "
                "ELSE 'open' END, updated_at = $2 WHERE order_id = $1",
                event.order_id,
                at,
            )
        elif isinstance(event, OrderCanceled):
            await tx.execute(
                "UPDATE orders SET status = 'canceled', cancel_reason = $2, updated_at = $3 "
                "WHERE order_id = $1",
                event.order_id,
                event.reason.value,
                at,
            )
        elif isinstance(event, OrderAmended):
            u = await self.units(tx, event.symbol)
            await tx.execute(
                "UPDATE orders SET price = $2, quantity = filled_qty + $3, remaining_qty = $3, "
                "updated_at = $4 WHERE order_id = $1",
                event.order_id,
                u.price(event.new_price_ticks),
                u.qty(event.new_qty_lots),
                at,
            )
        elif isinstance(event, TradeExecuted):
            u = await self.units(tx, event.symbol)
            for order_id, liquidity, fee in (
                (event.maker_order_id, "maker", event.maker_fee_atoms),
                (event.taker_order_id, "taker", event.taker_fee_atoms),
            ):
                await self._fill(tx, envelope, order_id, liquidity, u.quote_amount(fee), u)

    async def _fill(
        self, tx: Tx, envelope: Envelope, order_id: str, liquidity: str, fee: Decimal, u: Units
    ) -> None:
        event = envelope.event
        assert isinstance(event, TradeExecuted)
        price, qty = u.price(event.price_ticks), u.qty(event.qty_lots)
        notional = u.quote_amount(event.notional_atoms)
        at = ns_to_datetime(event.timestamp_ns)
        await tx.execute(
            "INSERT INTO order_fills (order_id, trade_id, symbol, liquidity, price, quantity, "
            "fee, executed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            order_id,
            event.trade_id,
            event.symbol,
            liquidity,
            price,
            qty,
            fee,
            at,
        )
        row = await tx.fetchrow(
            "SELECT filled_qty, filled_notional, quantity, quote_budget, status FROM orders "
            "WHERE order_id = $1",
            order_id,
        )
        filled = row[0] + qty
        filled_notional = row[1] + notional
        by_budget = row[3] > 0
        remaining = Decimal(0) if by_budget else row[2] - filled
        if not by_budget and remaining == 0:
            status = "filled"
        elif row[4] == "new":
            status = "new"
        else:
            status = "partially_filled"
        with localcontext() as ctx:
            ctx.prec = 80
            average = (filled_notional / filled).quantize(PRICE_PLACES, ROUND_HALF_EVEN)
        await tx.execute(
            "UPDATE orders SET filled_qty = $2, remaining_qty = $3, filled_notional = $4, "
            "fees = fees + $5, avg_fill_price = $6, status = $7, updated_at = $8 "
            "WHERE order_id = $1",
            order_id,
            filled,
            remaining,
            filled_notional,
            fee,
            average,
            status,
            at,
        )
