"""Reservations: what orders hold, and that fills and cancels release exactly the rest."""

from __future__ import annotations

from domain.events import OrderAccepted, OrderCanceled
from domain.exchange import Exchange
from domain.values import Side
from tests.unit.domain.factories import (
    ABC,
    ALICE,
    BOB,
    USD,
    buy,
    cancel,
    deposit,
    funded_exchange,
    list_instrument,
    market,
    only,
    open_account,
    sell,
)


def test_resting_buy_reserves_price_times_qty_plus_worst_case_fee() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "100.00", "3"))
    assert ex.balance(ALICE, USD) == (1_000_000 - 30_060, 30_060)


def test_worst_case_fee_is_rounded_up_per_lot() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "100.01", "2"))  # fee on one lot: 20.002 -> 21 atoms
    assert ex.balance(ALICE, USD)[1] == 2 * (10_001 + 21)


def test_resting_sell_reserves_base_quantity() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "4"))
    assert ex.balance(BOB, ABC) == (10_000 - 400, 400)


def test_fill_below_the_limit_returns_the_unused_part_of_the_reservation() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "99.00", "1"))
    ex.handle(buy(ALICE, "100.00", "1"))
    cost = 9_900 + 20  # notional + taker fee (19.8 -> 20)
    assert ex.balance(ALICE, USD) == (1_000_000 - cost, 0)
    assert ex.balance(ALICE, ABC) == (10_100, 0)


def test_partial_fill_keeps_reserving_only_the_open_quantity() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    ex.handle(buy(ALICE, "100.00", "3"))
    assert ex.balance(ALICE, USD)[1] == 2 * 10_020
    assert ex.balance(BOB, ABC) == (9_900, 0)


def test_cancel_releases_everything_the_order_still_holds() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    order = buy(ALICE, "100.00", "3")
    ex.handle(order)
    (event,) = only(ex.handle(cancel(ALICE, order.order_id)), OrderCanceled)
    assert event.released_atoms == 2 * 10_020
    assert ex.balance(ALICE, USD)[1] == 0


def test_market_buy_by_quantity_reserves_at_the_upper_band_edge() -> None:
    ex = funded_exchange()
    (accepted,) = only(ex.handle(market(ALICE, Side.BUY, qty="2")), OrderAccepted)
    assert accepted.price_ticks == 11_000
    assert accepted.reserved_atoms == 2 * (11_000 + 22)
    assert ex.balance(ALICE, USD) == (1_000_000, 0)  # nothing to buy: all released


def test_market_buy_by_budget_reserves_the_budget() -> None:
    ex = funded_exchange()
    (accepted,) = only(ex.handle(market(ALICE, Side.BUY, qty=None, budget="250.00")), OrderAccepted)
    assert accepted.reserved_atoms == 25_000
    assert accepted.quote_budget_atoms == 25_000


def test_maker_fee_above_taker_fee_is_still_covered_by_the_reservation() -> None:

    ex = Exchange()
    ex.handle(list_instrument(maker_fee_bps=50, taker_fee_bps=5))
    for acc in (ALICE, BOB):
        ex.handle(open_account(acc))
    ex.handle(deposit(ALICE, USD, "100.50"))
    ex.handle(deposit(BOB, ABC, "1.00"))
    ex.handle(buy(ALICE, "100.00", "1"))  # reserves 100.00 + 0.50 (maker is the worst case)
    ex.handle(sell(BOB, "100.00", "1"))
    assert ex.balance(ALICE, USD) == (0, 0)
    assert ex.balance(ALICE, ABC) == (100, 0)
    assert ex.fee_balance(USD) == 50 + 5
