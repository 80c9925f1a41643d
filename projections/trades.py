"""The trades read model: every execution, priced in Decimals, one row per trade."""

from __future__ import annotations

from domain.events import TradeExecuted
from projections.base import Envelope, Projector, Tx, ns_to_datetime


class TradesProjector(Projector):
    name = "trades"
    tables = ("trades",)

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        if not isinstance(event, TradeExecuted):
            return
        u = await self.units(tx, event.symbol)
        await tx.execute(
            """
            INSERT INTO trades (symbol, trade_id, executed_at, executed_at_ns, price, quantity,
                notional, taker_side, maker_order_id, taker_order_id, maker_account_id,
                taker_account_id, maker_fee, taker_fee, position)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            """,
            event.symbol,
            event.trade_id,
            ns_to_datetime(event.timestamp_ns),
            event.timestamp_ns,
            u.price(event.price_ticks),
            u.qty(event.qty_lots),
            u.quote_amount(event.notional_atoms),
            event.taker_side.value,
            event.maker_order_id,
            event.taker_order_id,
            event.maker_account_id,
            event.taker_account_id,
            u.quote_amount(event.maker_fee_atoms),
            u.quote_amount(event.taker_fee_atoms),
            envelope.position,
        )
