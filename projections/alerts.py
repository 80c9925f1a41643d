"""The alerts read model: one row per alert with its condition, status and what fired it.

Status moves `active` → `triggered` or `canceled`. Levels and prices are Decimals in the
quote asset; `pct` is a percentage. Rejected alert commands leave no row (they are in the
log). Alert events are rare, so each is one statement in the batch's transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.events import AlertCanceled, AlertCondition, AlertCreated, AlertTriggered
from projections.base import Envelope, Projector, Tx, ns_to_datetime

PCT_UNIT = Decimal("0.01")

INSERT = """
    INSERT INTO alerts (alert_id, account_id, symbol, condition, level, pct, window_s,
        price_at_create, status, created_at, created_position, updated_at, updated_position)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $9, $10)
    ON CONFLICT (alert_id) DO NOTHING
"""
TRIGGERED = """
    UPDATE alerts SET status = 'triggered', triggered_at = $2, trigger_price = $3,
        trigger_trade_id = $4, reference_price = $5, updated_at = $6, updated_position = $7
    WHERE alert_id = $1 AND updated_position < $7
"""
CANCELED = """
    UPDATE alerts SET status = 'canceled', canceled_at = $2, updated_at = $2,
        updated_position = $3
    WHERE alert_id = $1 AND updated_position < $3
"""


class AlertsProjector(Projector):
    name = "alerts"
    tables = ("alerts",)
    handles = frozenset({AlertCreated, AlertTriggered, AlertCanceled})

    def __init__(self) -> None:
        super().__init__()
        self._writes: list[tuple[str, tuple[Any, ...]]] = []

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        kind = type(event)
        if kind is AlertCreated:
            assert isinstance(event, AlertCreated)
            u = self.unit(event.symbol)
            moves = event.condition is AlertCondition.MOVES_PCT
            self._writes.append(
                (
                    INSERT,
                    (
                        event.alert_id, event.account_id, event.symbol, event.condition.value,
                        None if moves else u.price(event.level_ticks),
                        PCT_UNIT * event.pct_bps if moves else None,
                        event.window_s if moves else None,
                        u.price(event.last_price_ticks), ns_to_datetime(event.timestamp_ns),
                        envelope.position,
                    ),
                )
            )  # fmt: skip
        elif kind is AlertTriggered:
            assert isinstance(event, AlertTriggered)
            u = self.unit(event.symbol)
            self._writes.append(
                (
                    TRIGGERED,
                    (
                        event.alert_id, ns_to_datetime(event.traded_at_ns),
                        u.price(event.price_ticks), event.trade_id,
                        u.price(event.reference_price_ticks),
                        ns_to_datetime(event.timestamp_ns), envelope.position,
                    ),
                )
            )  # fmt: skip
        elif kind is AlertCanceled:
            assert isinstance(event, AlertCanceled)
            when = ns_to_datetime(event.timestamp_ns)
            self._writes.append((CANCELED, (event.alert_id, when, envelope.position)))

    async def flush(self, tx: Tx) -> None:
        writes, self._writes = self._writes, []
        for sql, args in writes:
            await tx.execute(sql, *args)

    def reset(self) -> None:
        self._writes = []
