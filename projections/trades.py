"""The trades read model: every execution, priced in Decimals, one row per trade.

A batch's trades are written with one multi-row INSERT. Raw trades may be dropped by
retention (`infra/readmodels.py`: `drop_chunks` on TimescaleDB); the candles built from
them stay.
"""

from __future__ import annotations

from typing import Any

from domain.events import TradeExecuted
from projections.base import (
    BIGINT,
    NUMERIC,
    TEXT,
    TIME,
    VALUE,
    Envelope,
    Projector,
    Tx,
    insert_rows,
    insert_sql,
)

COLUMNS = (
    ("symbol", TEXT), ("trade_id", BIGINT), ("executed_at", TIME), ("executed_at_ns", BIGINT),
    ("price", NUMERIC), ("quantity", NUMERIC), ("notional", NUMERIC), ("taker_side", TEXT),
    ("maker_order_id", TEXT), ("taker_order_id", TEXT), ("maker_account_id", TEXT),
    ("taker_account_id", TEXT), ("maker_fee", NUMERIC), ("taker_fee", NUMERIC),
    ("position", BIGINT),
)  # fmt: skip
INSERT = insert_sql("trades", COLUMNS)


class TradesProjector(Projector):
    name = "trades"
    tables = ("trades",)
    handles = frozenset({TradeExecuted})

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple[Any, ...]] = []

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is not TradeExecuted:
            return
        u = self.unit(event.symbol)
        quote_atom = u.quote_atom
        self._rows.append(
            (
                event.symbol, event.trade_id, event.timestamp_ns, event.timestamp_ns,
                u.tick_size * event.price_ticks, u.lot_size * event.qty_lots,
                quote_atom * event.notional_atoms, VALUE[event.taker_side],
                event.maker_order_id, event.taker_order_id, event.maker_account_id,
                event.taker_account_id, quote_atom * event.maker_fee_atoms,
                quote_atom * event.taker_fee_atoms, envelope.position,
            )
        )  # fmt: skip

    async def flush(self, tx: Tx) -> None:
        await insert_rows(tx, INSERT, COLUMNS, self._rows)
        self._rows = []

    def reset(self) -> None:
        self._rows = []
