"""Event classes, their registry and their JSON-safe round trip."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

from domain.events import (
    EVENT_TYPES,
    REGISTRY,
    AccountOpened,
    CommandRejected,
    Event,
    EventDecodeError,
    FundsDeposited,
    FundsWithdrawn,
    InstrumentListed,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    OrderRested,
    TradeExecuted,
    TradingHalted,
    TradingResumed,
    WithdrawalRejected,
    from_dict,
    to_dict,
)
from domain.values import (
    AccountId,
    Asset,
    CancelReason,
    ClientOrderId,
    OrderId,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)

M: dict[str, Any] = {"command_id": "cmd-1", "correlation_id": "corr-1", "timestamp_ns": 17}
SYM = Symbol("ABC-USD")
A = AccountId("alice")
OID = OrderId("o-1")

SAMPLES: dict[type[Event], Event] = {
    InstrumentListed: InstrumentListed(
        **M,
        symbol=SYM,
        base=Asset("ABC"),
        quote=Asset("USD"),
        base_decimals=2,
        quote_decimals=2,
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        min_qty=Decimal("1"),
        max_qty=Decimal("1000"),
        reference_price=Decimal("100.00"),
        price_band_bps=1000,
        maker_fee_bps=10,
        taker_fee_bps=20,
    ),
    TradingHalted: TradingHalted(**M, symbol=SYM),
    TradingResumed: TradingResumed(**M, symbol=SYM),
    AccountOpened: AccountOpened(**M, account_id=A),
    FundsDeposited: FundsDeposited(**M, account_id=A, asset=Asset("USD"), amount_atoms=10**30),
    FundsWithdrawn: FundsWithdrawn(**M, account_id=A, asset=Asset("USD"), amount_atoms=5),
    WithdrawalRejected: WithdrawalRejected(
        **M,
        account_id=A,
        asset=Asset("USD"),
        requested=Decimal("1.005"),
        reason=Reason.INVALID_AMOUNT,
    ),
    OrderAccepted: OrderAccepted(
        **M,
        order_id=OID,
        account_id=A,
        symbol=SYM,
        client_order_id=ClientOrderId("c-1"),
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        post_only=True,
        stp=SelfTradePrevention.CANCEL_BOTH,
        price_ticks=10_000,
        qty_lots=3,
        quote_budget_atoms=0,
        reserved_asset=Asset("USD"),
        reserved_atoms=30_060,
    ),
    OrderRejected: OrderRejected(
        **M,
        order_id=OID,
        account_id=A,
        symbol=SYM,
        client_order_id=ClientOrderId("c-1"),
        reason=Reason.TICK_SIZE,
    ),
    OrderRested: OrderRested(
        **M, order_id=OID, account_id=A, symbol=SYM, side=Side.SELL, price_ticks=1, qty_lots=2
    ),
    TradeExecuted: TradeExecuted(
        **M,
        symbol=SYM,
        trade_id=7,
        price_ticks=10_000,
        qty_lots=2,
        notional_atoms=20_000,
        maker_order_id=OID,
        taker_order_id=OrderId("o-2"),
        maker_account_id=A,
        taker_account_id=AccountId("bob"),
        taker_side=Side.SELL,
        maker_fee_atoms=20,
        taker_fee_atoms=40,
    ),
    OrderCanceled: OrderCanceled(
        **M,
        order_id=OID,
        account_id=A,
        symbol=SYM,
        reason=CancelReason.SELF_TRADE_PREVENTION,
        remaining_lots=2,
        released_asset=Asset("ABC"),
        released_atoms=200,
    ),
    OrderAmended: OrderAmended(
        **M,
        order_id=OID,
        account_id=A,
        symbol=SYM,
        old_price_ticks=10_000,
        new_price_ticks=10_001,
        old_qty_lots=3,
        new_qty_lots=2,
        priority_kept=False,
        reserved_atoms=20_042,
    ),
    CommandRejected: CommandRejected(
        **M, command_type="CancelOrder", subject="o-9", reason=Reason.UNKNOWN_ORDER, detail=""
    ),
}


def test_every_event_type_has_a_round_trip_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.event_type)
def test_event_round_trips_through_json_unchanged(cls: type[Event]) -> None:
    event = SAMPLES[cls]
    wire = json.dumps(to_dict(event))
    assert from_dict(json.loads(wire)) == event


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.event_type)
def test_serialized_event_holds_no_floats_and_names_its_type_and_version(
    cls: type[Event],
) -> None:
    data = to_dict(SAMPLES[cls])
    assert data["event_type"] == cls.event_type
    assert data["schema_version"] == cls.schema_version
    assert not any(isinstance(v, float) for v in data.values())
    assert data["command_id"] == "cmd-1" and data["timestamp_ns"] == 17


def test_decimals_are_carried_as_strings_keeping_their_exponent() -> None:
    data = to_dict(SAMPLES[InstrumentListed])
    assert data["reference_price"] == "100.00"
    assert data["tick_size"] == "0.01"


def test_events_are_frozen_slotted_and_past_tense() -> None:
    for cls in EVENT_TYPES:
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert "__slots__" in cls.__dict__
        assert cls.event_type == cls.__name__
        assert cls.event_type.endswith(("ed", "Withdrawn"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        halted = SAMPLES[TradingHalted]
        assert isinstance(halted, TradingHalted)
        halted.symbol = Symbol("X")  # type: ignore[misc]


def test_registry_is_keyed_by_event_type() -> None:
    assert REGISTRY["TradeExecuted"] is TradeExecuted
    assert len(REGISTRY) == len(EVENT_TYPES)


def test_from_dict_refuses_unknown_type_wrong_version_missing_field_and_floats() -> None:
    good = to_dict(SAMPLES[FundsDeposited])
    with pytest.raises(EventDecodeError, match="unknown event_type"):
        from_dict({**good, "event_type": "FundsTeleported"})
    with pytest.raises(EventDecodeError, match="schema_version"):
        from_dict({**good, "schema_version": 2})
    missing = dict(good)
    del missing["amount_atoms"]
    with pytest.raises(EventDecodeError, match="missing"):
        from_dict(missing)
    with pytest.raises(EventDecodeError):
        from_dict({**good, "amount_atoms": 1.0})
    with pytest.raises(EventDecodeError):
        from_dict({**to_dict(SAMPLES[InstrumentListed]), "tick_size": 0.01})


def test_to_dict_refuses_a_float_smuggled_into_an_event() -> None:
    bad = FundsDeposited(**M, account_id=A, asset=Asset("USD"), amount_atoms=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_dict(bad)
