"""PlaceOrder validation: every rejection reason, and rejections reserve nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.commands import Command, PlaceOrder
from domain.events import OrderAccepted, OrderRejected
from domain.exchange import Exchange
from domain.values import ClientOrderId, Reason, Side, Symbol, TimeInForce
from tests.unit.domain.factories import (
    ALICE,
    BOB,
    SYMBOL,
    USD,
    buy,
    deposit,
    funded_exchange,
    list_instrument,
    market,
    open_account,
    sell,
)


def rejection_of(command: PlaceOrder, **exchange: Any) -> Reason:
    ex = funded_exchange(**exchange)
    outcome = ex.handle(command)
    (event,) = outcome.events
    assert isinstance(event, OrderRejected)
    assert event.order_id == command.order_id
    assert event.client_order_id == command.client_order_id
    assert ex.orders == {}
    assert ex.balance(command.account_id, USD)[1] == 0
    return event.reason


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (buy(ALICE, "100.005", "1"), Reason.TICK_SIZE),
        (buy(ALICE, "100.00", "1.5"), Reason.LOT_SIZE),
        (buy(ALICE, "100.00", "0"), Reason.INVALID_QUANTITY),
        (buy(ALICE, "100.00", "-1"), Reason.INVALID_QUANTITY),
        (buy(ALICE, "100.00", "1001"), Reason.MAX_QTY),
        (buy(ALICE, "0", "1"), Reason.INVALID_PRICE),
        (buy(ALICE, "-1.00", "1"), Reason.INVALID_PRICE),
        (buy(ALICE, "110.01", "1"), Reason.PRICE_BAND),
        (sell(BOB, "89.99", "1"), Reason.PRICE_BAND),
        (buy(ALICE, symbol=Symbol("NOPE")), Reason.UNKNOWN_SYMBOL),
        (buy("nobody"), Reason.UNKNOWN_ACCOUNT),
        (buy(ALICE, "100.00", "100"), Reason.INSUFFICIENT_FUNDS),
        (sell(BOB, "100.00", "101"), Reason.INSUFFICIENT_FUNDS),
        (buy(ALICE, price=None), Reason.INVALID_PRICE),
        (market(ALICE, price=Decimal("100")), Reason.INVALID_PRICE),
        (market(ALICE, qty=None), Reason.INVALID_QUANTITY),
        (market(ALICE, qty="1", budget="100.00"), Reason.INVALID_QUANTITY),
        (market(BOB, Side.SELL, qty=None, budget="100.00"), Reason.INVALID_QUANTITY),
        (market(ALICE, qty=None, budget="0.001"), Reason.INVALID_AMOUNT),
        (
            market(ALICE, qty=None, budget="100.00", time_in_force=TimeInForce.FOK),
            Reason.INVALID_TIME_IN_FORCE,
        ),
        (buy(ALICE, post_only=True, time_in_force=TimeInForce.IOC), Reason.INVALID_POST_ONLY),
        (market(ALICE, post_only=True), Reason.INVALID_POST_ONLY),
        (buy(ALICE, client_order_id=ClientOrderId("")), Reason.INVALID_CLIENT_ORDER_ID),
    ],
    ids=lambda v: v.value if isinstance(v, Reason) else "",
)
def test_invalid_order_is_rejected_with_a_machine_readable_reason(
    command: PlaceOrder, reason: Reason
) -> None:
    assert rejection_of(command) is reason


def test_order_below_min_qty_is_rejected_with_min_qty() -> None:
    ex = Exchange()
    ex.handle(list_instrument(min_qty=Decimal("5")))
    ex.handle(open_account(ALICE))
    ex.handle(deposit(ALICE, USD, "10000.00"))
    (event,) = ex.handle(buy(ALICE, "100.00", "4")).events
    assert isinstance(event, OrderRejected) and event.reason is Reason.MIN_QTY


def test_buy_needing_exactly_the_available_funds_is_accepted() -> None:
    ex = funded_exchange(usd="100.20")
    outcome = ex.handle(buy(ALICE, "100.00", "1"))
    assert isinstance(outcome.events[0], OrderAccepted)
    assert ex.balance(ALICE, USD) == (0, 10_020)


def test_buy_one_atom_short_is_rejected_with_insufficient_funds() -> None:
    assert rejection_of(buy(ALICE, "100.00", "1"), usd="100.19") is Reason.INSUFFICIENT_FUNDS


def test_post_only_order_that_would_take_is_rejected() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    (event,) = ex.handle(buy(ALICE, "100.00", "1", post_only=True)).events
    assert isinstance(event, OrderRejected)
    assert event.reason is Reason.POST_ONLY_WOULD_TAKE


def test_post_only_order_that_does_not_cross_rests() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    outcome = ex.handle(buy(ALICE, "99.99", "1", post_only=True))
    assert [e.event_type for e in outcome.events] == ["OrderAccepted", "OrderRested"]


def test_reused_order_id_with_a_new_client_order_id_is_rejected() -> None:
    ex = funded_exchange()
    first = buy(ALICE, "99.00", "1")
    ex.handle(first)
    second = buy(ALICE, "99.00", "1", order_id=first.order_id)
    (event,) = ex.handle(second).events
    assert isinstance(event, OrderRejected)
    assert event.reason is Reason.DUPLICATE_ORDER_ID
    assert len(ex.orders) == 1


def test_price_band_follows_the_last_trade_price() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "109.00", "1"))
    ex.handle(buy(ALICE, "109.00", "1"))  # last trade 109.00: band is now 98.10 .. 119.90
    assert ex.reference_price(SYMBOL) == 10_900
    (event,) = ex.handle(buy(ALICE, "98.00", "1")).events
    assert isinstance(event, OrderRejected) and event.reason is Reason.PRICE_BAND
    assert ex.handle(sell(BOB, "119.90", "1")).events[0].event_type == "OrderAccepted"


def test_place_order_refuses_float_price_or_quantity_at_construction() -> None:
    with pytest.raises(TypeError):
        PlaceOrder(**{**_fields(buy(ALICE)), "price": 100.0})
    with pytest.raises(TypeError):
        PlaceOrder(**{**_fields(buy(ALICE)), "quantity": 1.0})


def test_handle_refuses_something_that_is_not_a_known_command() -> None:
    with pytest.raises(TypeError):
        funded_exchange().handle(Command(command_id="x", correlation_id="x", timestamp_ns=1))


def _fields(command: PlaceOrder) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
