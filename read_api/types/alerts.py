"""A price alert as the alerts read model holds it, and the input that creates one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from read_api.scalars import BigInt


@strawberry.type(description="A price alert: active until it triggers (once) or is canceled")
class Alert:
    alert_id: str
    account_id: str
    symbol: str
    condition: str = strawberry.field(description="crosses_above, crosses_below or moves_pct")
    level: Decimal | None = strawberry.field(description="crossings: the price level")
    pct: Decimal | None = strawberry.field(description="moves_pct: the move in percent")
    window_s: int | None = strawberry.field(description="moves_pct: the window in seconds")
    price_at_create: Decimal = strawberry.field(description="the last price at creation")
    status: str = strawberry.field(description="active, triggered or canceled")
    created_at: datetime
    triggered_at: datetime | None = strawberry.field(description="time of the trade that fired it")
    trigger_price: Decimal | None
    trigger_trade_id: BigInt | None
    reference_price: Decimal | None = strawberry.field(
        description="the price the trade crossed from, or moved from within the window"
    )
    canceled_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        return cls(**{k: row[k] for k in row.keys() if k not in _NOT_FIELDS})  # noqa: SIM118


_NOT_FIELDS = ("created_position", "updated_position")


@strawberry.input(description="As the REST alert body; decimals as strings")
class AlertInput:
    symbol: str
    condition: str = strawberry.field(description="crosses_above, crosses_below or moves_pct")
    level: str | None = None
    pct: str | None = None
    window_s: int | None = None
    client_alert_id: str | None = None
