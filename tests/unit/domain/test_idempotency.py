"""Repeated PlaceOrder with the same (account, client order id)."""

from __future__ import annotations

from domain.events import OrderRejected
from domain.values import ClientOrderId, OrderId, Reason
from tests.unit.domain.factories import ALICE, BOB, buy, funded_exchange, kinds, sell


def test_retried_order_returns_the_original_outcome_and_changes_nothing() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    order = buy(ALICE, "100.00", "3")
    first = ex.handle(order)
    before = ex.state_hash()
    retry = ex.handle(order)
    assert retry.duplicate and not first.duplicate
    assert retry.events == first.events
    assert kinds(retry) == ["OrderAccepted", "TradeExecuted", "OrderRested"]
    assert ex.state_hash() == before


def test_retry_returns_the_original_outcome_even_after_later_activity() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "1")
    first = ex.handle(order)
    ex.handle(sell(BOB, "99.00", "1"))  # fills it
    retry = ex.handle(order)
    assert retry.duplicate and retry.events == first.events


def test_retried_rejected_order_returns_the_original_rejection() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "100.005", "1")
    first = ex.handle(order)
    assert isinstance(first.events[0], OrderRejected)
    retry = ex.handle(order)
    assert retry.duplicate and retry.events == first.events


def test_same_client_order_id_for_a_different_order_is_rejected() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "99.00", "1", client_order_id=ClientOrderId("mine")))
    (event,) = ex.handle(
        buy(ALICE, "98.00", "1", client_order_id=ClientOrderId("mine"), order_id=OrderId("o-x"))
    ).events
    assert isinstance(event, OrderRejected)
    assert event.reason is Reason.DUPLICATE_CLIENT_ORDER_ID
    assert len(ex.orders) == 1


def test_client_order_ids_are_scoped_per_account() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "99.00", "1", client_order_id=ClientOrderId("same")))
    outcome = ex.handle(sell(BOB, "101.00", "1", client_order_id=ClientOrderId("same")))
    assert not outcome.duplicate
    assert kinds(outcome) == ["OrderAccepted", "OrderRested"]
