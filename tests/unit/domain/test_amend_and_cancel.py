"""CancelOrder, CancelAllOrders and AmendOrder."""

from __future__ import annotations

import pytest

from domain.events import CommandRejected, OrderAmended, OrderCanceled, TradeExecuted
from domain.values import CancelReason, Reason
from tests.unit.domain.factories import (
    ABC,
    ALICE,
    BOB,
    CAROL,
    SYMBOL,
    USD,
    amend,
    buy,
    cancel,
    cancel_all,
    funded_exchange,
    halt,
    kinds,
    only,
    sell,
)


def test_cancel_removes_the_order_from_the_book() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "1")
    ex.handle(order)
    (event,) = ex.handle(cancel(ALICE, order.order_id)).events
    assert isinstance(event, OrderCanceled) and event.reason is CancelReason.REQUESTED
    assert ex.books[SYMBOL].bids.best_price() is None
    assert ex.order(order.order_id) is None


def test_cancel_of_an_unknown_or_finished_order_is_rejected_with_unknown_order() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "1")
    ex.handle(order)
    ex.handle(cancel(ALICE, order.order_id))
    (event,) = ex.handle(cancel(ALICE, order.order_id)).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.UNKNOWN_ORDER
    assert event.subject == order.order_id


def test_cancel_of_someone_elses_order_is_rejected_with_not_order_owner() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "1")
    ex.handle(order)
    before = ex.state_hash()
    (event,) = ex.handle(cancel(BOB, order.order_id)).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.NOT_ORDER_OWNER
    assert ex.state_hash() == before


def test_cancel_all_cancels_every_open_order_of_the_account_in_acceptance_order() -> None:
    ex = funded_exchange()
    mine = [buy(ALICE, "99.00", "1"), sell(ALICE, "101.00", "1"), buy(ALICE, "98.00", "2")]
    for order in mine:
        ex.handle(order)
    ex.handle(buy(BOB, "99.00", "1"))
    events = only(ex.handle(cancel_all(ALICE)), OrderCanceled)
    assert [e.order_id for e in events] == [o.order_id for o in mine]
    assert {e.reason for e in events} == {CancelReason.CANCEL_ALL}
    assert len(ex.orders) == 1
    assert ex.balance(ALICE, USD)[1] == 0


def test_cancel_all_can_be_limited_to_one_symbol() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "99.00", "1"))
    assert only(ex.handle(cancel_all(ALICE, "OTHER-USD")), CommandRejected)[0].reason is (
        Reason.UNKNOWN_SYMBOL
    )
    assert kinds(ex.handle(cancel_all(ALICE, SYMBOL))) == ["OrderCanceled"]
    assert kinds(ex.handle(cancel_all(ALICE))) == []


def test_cancel_all_for_an_unknown_account_is_rejected() -> None:
    ex = funded_exchange()
    (event,) = ex.handle(cancel_all("nobody")).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.UNKNOWN_ACCOUNT


def test_reducing_quantity_keeps_time_priority() -> None:
    ex = funded_exchange()
    first = buy(ALICE, "99.00", "5")
    second = buy(CAROL, "99.00", "1")
    ex.handle(first)
    ex.handle(second)
    (event,) = ex.handle(amend(ALICE, first.order_id, qty="2")).events
    assert isinstance(event, OrderAmended) and event.priority_kept
    assert ex.balance(ALICE, USD)[1] == 2 * (9_900 + 20)
    (trade,) = only(ex.handle(sell(BOB, "99.00", "1")), TradeExecuted)
    assert trade.maker_order_id == first.order_id


def test_raising_quantity_loses_time_priority() -> None:
    ex = funded_exchange()
    first = buy(ALICE, "99.00", "1")
    second = buy(CAROL, "99.00", "1")
    ex.handle(first)
    ex.handle(second)
    (event,) = ex.handle(amend(ALICE, first.order_id, qty="3")).events
    assert isinstance(event, OrderAmended) and not event.priority_kept
    (trade,) = only(ex.handle(sell(BOB, "99.00", "1")), TradeExecuted)
    assert trade.maker_order_id == second.order_id


def test_changing_price_moves_the_order_to_the_back_of_the_new_level() -> None:
    ex = funded_exchange()
    first = buy(ALICE, "98.00", "1")
    other = buy(CAROL, "99.00", "1")
    ex.handle(first)
    ex.handle(other)
    ex.handle(amend(ALICE, first.order_id, price="99.00"))
    assert ex.balance(ALICE, USD)[1] == 9_900 + 20
    trades = only(ex.handle(sell(BOB, "99.00", "2")), TradeExecuted)
    assert [t.maker_order_id for t in trades] == [other.order_id, first.order_id]


def test_amend_to_a_crossing_price_is_rejected_and_never_trades() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    order = buy(ALICE, "99.00", "1")
    ex.handle(order)
    (event,) = ex.handle(amend(ALICE, order.order_id, price="100.00")).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.AMEND_WOULD_TAKE
    resting = ex.order(order.order_id)
    assert resting is not None and resting.price_ticks == 9_900


@pytest.mark.parametrize(
    ("price", "qty", "reason"),
    [
        (None, None, Reason.NOTHING_TO_AMEND),
        ("99.00", "2", Reason.NOTHING_TO_AMEND),
        ("99.005", None, Reason.TICK_SIZE),
        (None, "1.5", Reason.LOT_SIZE),
        (None, "0", Reason.INVALID_QUANTITY),
        (None, "1001", Reason.MAX_QTY),
        ("0", None, Reason.INVALID_PRICE),
        ("80.00", None, Reason.PRICE_BAND),
        (None, "101", Reason.INSUFFICIENT_FUNDS),
    ],
)
def test_invalid_amend_is_rejected_and_changes_nothing(
    price: str | None, qty: str | None, reason: Reason
) -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "2")
    ex.handle(order)
    before = ex.state_hash()
    (event,) = ex.handle(amend(ALICE, order.order_id, price, qty)).events
    assert isinstance(event, CommandRejected) and event.reason is reason
    assert ex.state_hash() == before


def test_amend_by_another_account_or_of_an_unknown_order_is_rejected() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "2")
    ex.handle(order)
    (event,) = ex.handle(amend(BOB, order.order_id, qty="1")).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.NOT_ORDER_OWNER
    (event,) = ex.handle(amend(ALICE, "o-none", qty="1")).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.UNKNOWN_ORDER


def test_amend_is_rejected_while_trading_is_halted() -> None:
    ex = funded_exchange()
    order = buy(ALICE, "99.00", "2")
    ex.handle(order)
    ex.handle(halt())
    (event,) = ex.handle(amend(ALICE, order.order_id, qty="1")).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.TRADING_HALTED


def test_amending_a_sell_adjusts_its_base_reservation() -> None:
    ex = funded_exchange()
    order = sell(BOB, "101.00", "2")
    ex.handle(order)
    ex.handle(amend(BOB, order.order_id, price="102.00", qty="5"))
    assert ex.balance(BOB, ABC) == (10_000 - 500, 500)
