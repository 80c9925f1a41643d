"""For auditors: the committed event log and an account's state as of a past position."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON

from read_api.history import AccountStateAt
from read_api.scalars import BigInt


@strawberry.type(description="One committed event, as in docs/events.md")
class RecordedEvent:
    position: BigInt
    event_id: str
    stream_id: str
    stream_version: BigInt
    event_type: str
    schema_version: int
    occurred_at: datetime
    occurred_at_ns: BigInt
    command_id: str
    correlation_id: str
    hash: str = strawberry.field(description="hex of the row's chain hash")
    payload: JSON = strawberry.field(description="the event's canonical JSON (integers may "
                                     "exceed 2^53)")  # fmt: skip

    @classmethod
    def from_row(cls, row: Any) -> RecordedEvent:
        return cls(
            position=row["notification_id"],
            event_id=str(row["event_id"]),
            stream_id=str(row["originator_id"]),
            stream_version=row["originator_version"],
            event_type=row["event_type"],
            schema_version=row["schema_version"],
            occurred_at=row["occurred_at"],
            occurred_at_ns=row["occurred_at_ns"],
            command_id=row["command_id"],
            correlation_id=row["correlation_id"],
            hash=bytes(row["hash"]).hex(),
            payload=json.loads(bytes(row["state"])),
        )


@strawberry.input
class EventFilter:
    stream_id: str | None = None
    account_id: str | None = None
    symbol: str | None = None
    event_types: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_position: BigInt | None = None
    to_position: BigInt | None = None


@strawberry.type
class BalanceAt:
    asset: str
    available: Decimal
    reserved: Decimal
    available_atoms: BigInt
    reserved_atoms: BigInt


@strawberry.type
class OrderAt:
    order_id: str
    symbol: str
    side: str
    order_type: str
    price: Decimal
    remaining_quantity: Decimal
    resting: bool


@strawberry.type(description="An account as the core saw it right after `position`")
class AccountState:
    account_id: str
    position: BigInt
    exists: bool
    balances: list[BalanceAt]
    open_orders: list[OrderAt]
    replayed_events: int
    from_snapshot: BigInt | None

    @classmethod
    def of(cls, state: AccountStateAt) -> AccountState:
        return cls(
            account_id=state.account_id,
            position=BigInt(state.position),
            exists=state.exists,
            balances=[BalanceAt(**vars_of(b)) for b in state.balances],
            open_orders=[OrderAt(**vars_of(o)) for o in state.open_orders],
            replayed_events=state.replayed_events,
            from_snapshot=None if state.from_snapshot is None else BigInt(state.from_snapshot),
        )


def vars_of(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}
