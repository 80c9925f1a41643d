"""Matching: price-time priority, partial fills, IOC, FOK, post-only, STP and market orders."""

from __future__ import annotations

from domain.events import OrderAccepted, OrderCanceled, OrderRested, TradeExecuted
from domain.values import CancelReason, SelfTradePrevention, Side, TimeInForce
from tests.unit.domain.factories import (
    ABC,
    ALICE,
    BOB,
    CAROL,
    SYMBOL,
    USD,
    buy,
    funded_exchange,
    kinds,
    market,
    only,
    sell,
)


def test_incoming_order_trades_at_the_resting_order_price() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "99.50", "1"))
    (trade,) = only(ex.handle(buy(ALICE, "100.00", "1")), TradeExecuted)
    assert trade.price_ticks == 9_950
    assert trade.taker_side is Side.BUY


def test_better_price_is_matched_first() -> None:
    ex = funded_exchange()
    worse = sell(BOB, "100.50", "1")
    better = sell(CAROL, "100.00", "1")
    ex.handle(worse)
    ex.handle(better)
    trades = only(ex.handle(buy(ALICE, "101.00", "2")), TradeExecuted)
    assert [t.maker_order_id for t in trades] == [better.order_id, worse.order_id]
    assert [t.price_ticks for t in trades] == [10_000, 10_050]


def test_earlier_order_at_the_same_price_is_matched_first() -> None:
    ex = funded_exchange()
    first = sell(BOB, "100.00", "1")
    second = sell(CAROL, "100.00", "1")
    ex.handle(first)
    ex.handle(second)
    (trade,) = only(ex.handle(buy(ALICE, "100.00", "1")), TradeExecuted)
    assert trade.maker_order_id == first.order_id


def test_partial_fill_rests_the_remainder_of_a_gtc_order() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "2"))
    taker = buy(ALICE, "100.00", "5")
    outcome = ex.handle(taker)
    assert kinds(outcome) == ["OrderAccepted", "TradeExecuted", "OrderRested"]
    (rested,) = only(outcome, OrderRested)
    assert rested.qty_lots == 3
    assert ex.books[SYMBOL].bids.best_price() == 10_000
    assert ex.books[SYMBOL].asks.best_price() is None


def test_partially_filled_maker_keeps_its_place_with_the_rest() -> None:
    ex = funded_exchange()
    maker = sell(BOB, "100.00", "5")
    ex.handle(maker)
    ex.handle(buy(ALICE, "100.00", "2"))
    resting = ex.order(maker.order_id)
    assert resting is not None and resting.remaining_lots == 3


def test_ioc_remainder_is_canceled_after_partial_fill() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "2"))
    outcome = ex.handle(buy(ALICE, "100.00", "5", time_in_force=TimeInForce.IOC))
    assert kinds(outcome) == ["OrderAccepted", "TradeExecuted", "OrderCanceled"]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.reason is CancelReason.IOC_REMAINDER
    assert canceled.remaining_lots == 3
    assert ex.books[SYMBOL].bids.best_price() is None
    assert ex.balance(ALICE, USD)[1] == 0


def test_fok_that_can_fill_completely_fills_completely() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "2"))
    ex.handle(sell(CAROL, "100.10", "3"))
    outcome = ex.handle(buy(ALICE, "100.10", "5", time_in_force=TimeInForce.FOK))
    assert sum(t.qty_lots for t in only(outcome, TradeExecuted)) == 5


def test_fok_that_cannot_fill_completely_trades_nothing() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "2"))
    ex.handle(sell(CAROL, "100.20", "3"))  # beyond the limit
    outcome = ex.handle(buy(ALICE, "100.10", "5", time_in_force=TimeInForce.FOK))
    assert kinds(outcome) == ["OrderAccepted", "OrderCanceled"]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.reason is CancelReason.FOK_UNFILLED
    assert len(ex.books[SYMBOL].asks) == 2
    assert ex.balance(ALICE, USD) == (1_000_000, 0)


def test_fok_does_not_count_own_orders_it_would_refuse_to_trade_with() -> None:
    ex = funded_exchange()
    ex.handle(sell(ALICE, "100.00", "3"))
    ex.handle(sell(BOB, "100.00", "2"))
    outcome = ex.handle(buy(ALICE, "100.00", "4", time_in_force=TimeInForce.FOK))
    assert only(outcome, TradeExecuted) == []
    assert only(outcome, OrderCanceled)[0].reason is CancelReason.FOK_UNFILLED


def test_stp_cancel_taker_cancels_the_incoming_remainder() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    own = sell(ALICE, "100.00", "1")
    ex.handle(own)
    outcome = ex.handle(buy(ALICE, "100.00", "3", stp=SelfTradePrevention.CANCEL_TAKER))
    assert kinds(outcome) == ["OrderAccepted", "TradeExecuted", "OrderCanceled"]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.reason is CancelReason.SELF_TRADE_PREVENTION
    assert canceled.remaining_lots == 2
    assert ex.order(own.order_id) is not None


def test_stp_cancel_maker_cancels_the_resting_order_and_keeps_matching() -> None:
    ex = funded_exchange()
    own = sell(ALICE, "100.00", "1")
    ex.handle(own)
    other = sell(BOB, "100.00", "1")
    ex.handle(other)
    outcome = ex.handle(buy(ALICE, "100.00", "1", stp=SelfTradePrevention.CANCEL_MAKER))
    assert kinds(outcome) == ["OrderAccepted", "OrderCanceled", "TradeExecuted"]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.order_id == own.order_id
    assert canceled.reason is CancelReason.SELF_TRADE_PREVENTION
    assert only(outcome, TradeExecuted)[0].maker_order_id == other.order_id
    assert ex.balance(ALICE, ABC) == (10_100, 0)


def test_stp_cancel_both_cancels_maker_and_taker() -> None:
    ex = funded_exchange()
    own = sell(ALICE, "100.00", "1")
    ex.handle(own)
    ex.handle(sell(BOB, "100.00", "1"))
    taker = buy(ALICE, "100.00", "2", stp=SelfTradePrevention.CANCEL_BOTH)
    outcome = ex.handle(taker)
    assert [e.order_id for e in only(outcome, OrderCanceled)] == [own.order_id, taker.order_id]
    assert only(outcome, TradeExecuted) == []
    assert ex.balance(ALICE, USD) == (1_000_000, 0)
    assert ex.balance(ALICE, ABC) == (10_000, 0)


def test_market_order_takes_liquidity_and_cancels_the_rest() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    ex.handle(sell(CAROL, "101.00", "1"))
    outcome = ex.handle(market(ALICE, Side.BUY, qty="3"))
    assert [t.price_ticks for t in only(outcome, TradeExecuted)] == [10_000, 10_100]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.reason is CancelReason.MARKET_NO_LIQUIDITY
    assert canceled.remaining_lots == 1
    assert ex.balance(ALICE, USD)[1] == 0


def test_market_order_never_trades_outside_the_price_band() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "110.00", "1"))  # at the band edge: reachable
    ex.handle(sell(BOB, "104.00", "1"))
    ex.handle(buy(ALICE, "104.00", "1"))  # last price 104.00 moves the band to 93.60..114.40
    ex.handle(sell(CAROL, "114.40", "1"))
    outcome = ex.handle(market(ALICE, Side.BUY, qty="5"))
    assert [t.price_ticks for t in only(outcome, TradeExecuted)] == [11_000, 11_440]
    (accepted,) = only(outcome, OrderAccepted)
    assert accepted.price_ticks == 11_440


def test_market_sell_fills_against_bids_down_to_the_band() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "99.00", "2"))
    ex.handle(buy(CAROL, "95.00", "1"))
    outcome = ex.handle(market(BOB, Side.SELL, qty="3"))
    assert [t.price_ticks for t in only(outcome, TradeExecuted)] == [9_900, 9_500]
    assert kinds(outcome)[-1] == "TradeExecuted"  # filled completely: no cancel


def test_market_buy_with_a_quote_budget_spends_at_most_the_budget() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "2"))
    ex.handle(sell(CAROL, "101.00", "5"))
    outcome = ex.handle(market(ALICE, Side.BUY, qty=None, budget="300.00"))
    trades = only(outcome, TradeExecuted)
    # 100.20 per lot at 100.00 (2 lots), then 101.21 per lot at 101.00: 300.00 - 200.40 buys 0
    assert [(t.price_ticks, t.qty_lots) for t in trades] == [(10_000, 2)]
    (canceled,) = only(outcome, OrderCanceled)
    assert canceled.reason is CancelReason.BUDGET_EXHAUSTED
    spent = sum(t.notional_atoms + t.taker_fee_atoms for t in trades)
    assert spent <= 30_000
    assert ex.balance(ALICE, USD) == (1_000_000 - spent, 0)
    assert ex.balance(ALICE, ABC) == (10_200, 0)


def test_market_buy_with_a_budget_and_an_empty_book_is_canceled_for_no_liquidity() -> None:
    ex = funded_exchange()
    outcome = ex.handle(market(ALICE, Side.BUY, qty=None, budget="50.00"))
    assert kinds(outcome) == ["OrderAccepted", "OrderCanceled"]
    assert only(outcome, OrderCanceled)[0].reason is CancelReason.MARKET_NO_LIQUIDITY
    assert ex.balance(ALICE, USD) == (1_000_000, 0)


def test_trade_ids_count_up_from_one() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    ex.handle(sell(BOB, "100.01", "1"))
    trades = only(ex.handle(buy(ALICE, "100.01", "2")), TradeExecuted)
    assert [t.trade_id for t in trades] == [1, 2]


def test_taker_sell_pays_the_taker_fee_and_the_maker_buyer_the_maker_fee() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "100.00", "3"))
    (trade,) = only(ex.handle(sell(BOB, "100.00", "3")), TradeExecuted)
    assert (trade.notional_atoms, trade.maker_fee_atoms, trade.taker_fee_atoms) == (30_000, 30, 60)
    assert ex.balance(BOB, USD) == (1_000_000 + 30_000 - 60, 0)
    assert ex.balance(ALICE, USD) == (1_000_000 - 30_000 - 30, 0)
    assert ex.fee_balance(USD) == 90
