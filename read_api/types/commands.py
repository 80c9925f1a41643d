"""Mutation inputs and the command outcome (the REST `CommandOutcome`, field for field)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from read_api.scalars import BigInt


@strawberry.type
class OutcomeEvent:
    position: BigInt | None = strawberry.field(description="null for a replayed outcome")
    event: JSON


@strawberry.type
class CommandOutcome:
    command_id: str
    correlation_id: str
    outcome: str = strawberry.field(description="accepted or rejected")
    reason: str | None
    duplicate: bool
    order_id: str | None
    replayed: bool = strawberry.field(
        description="true when an Idempotency-Key retry got the stored first answer"
    )
    events: list[OutcomeEvent]

    @classmethod
    def from_body(cls, body: dict[str, Any], replayed: bool = False) -> CommandOutcome:
        return cls(
            command_id=body["command_id"],
            correlation_id=body["correlation_id"],
            outcome=body["outcome"],
            reason=body.get("reason"),
            duplicate=bool(body.get("duplicate")),
            order_id=body.get("order_id"),
            replayed=replayed,
            events=[OutcomeEvent(position=e["position"], event=e["event"]) for e in body["events"]],
        )


@strawberry.input(description="As the REST order body; decimals as strings")
class OrderInput:
    symbol: str
    side: str
    order_type: str = "limit"
    price: str | None = None
    quantity: str | None = None
    quote_budget: str | None = None
    time_in_force: str = "gtc"
    post_only: bool = False
    stp: str = "cancel_taker"
    client_order_id: str | None = None


@strawberry.input
class InstrumentInput:
    symbol: str
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    tick_size: str
    lot_size: str
    min_qty: str
    max_qty: str
    reference_price: str
    price_band_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
