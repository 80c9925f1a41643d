"""Listing instruments, halting and resuming trading."""

from __future__ import annotations

from decimal import Decimal

from domain.events import CommandRejected, InstrumentListed, OrderCanceled, OrderRejected
from domain.exchange import Exchange
from domain.values import Asset, CancelReason, Reason, Symbol, TradingStatus
from tests.unit.domain.factories import (
    ALICE,
    BOB,
    SYMBOL,
    buy,
    cancel,
    funded_exchange,
    halt,
    kinds,
    list_instrument,
    resume,
    sell,
)


def test_listing_an_instrument_opens_an_empty_book() -> None:
    ex = Exchange()
    (event,) = ex.handle(list_instrument()).events
    assert isinstance(event, InstrumentListed)
    assert ex.instruments[SYMBOL].status is TradingStatus.TRADING
    assert ex.books[SYMBOL].bids.best_price() is None
    assert ex.reference_price(SYMBOL) == 10_000


def test_listing_the_same_symbol_twice_is_rejected_with_instrument_exists() -> None:
    ex = Exchange()
    ex.handle(list_instrument())
    (event,) = ex.handle(list_instrument()).events
    assert isinstance(event, CommandRejected)
    assert event.reason is Reason.INSTRUMENT_EXISTS


def test_listing_whose_price_times_qty_is_finer_than_a_quote_atom_is_rejected() -> None:
    ex = Exchange()
    (event,) = ex.handle(list_instrument(lot_size=Decimal("0.1"), min_qty=Decimal("1"))).events
    assert isinstance(event, CommandRejected)
    assert event.reason is Reason.INVALID_INSTRUMENT
    assert "quote atoms" in event.detail
    assert not ex.instruments


def test_listing_must_agree_with_known_asset_decimals() -> None:
    ex = Exchange()
    ex.handle(list_instrument())
    (event,) = ex.handle(
        list_instrument(symbol=Symbol("XYZ-USD"), base=Asset("XYZ"), quote_decimals=6)
    ).events
    assert isinstance(event, CommandRejected)
    assert event.reason is Reason.ASSET_DECIMALS_MISMATCH


def test_halted_symbol_rejects_new_orders_with_trading_halted() -> None:
    ex = funded_exchange()
    assert kinds(ex.handle(halt())) == ["TradingHalted"]
    (event,) = ex.handle(buy(ALICE)).events
    assert isinstance(event, OrderRejected)
    assert event.reason is Reason.TRADING_HALTED


def test_halted_symbol_still_allows_cancels() -> None:
    ex = funded_exchange()
    placed = buy(ALICE, "99.00", "2")
    ex.handle(placed)
    ex.handle(halt())
    (event,) = ex.handle(cancel(ALICE, placed.order_id)).events
    assert isinstance(event, OrderCanceled)
    assert event.reason is CancelReason.REQUESTED
    assert ex.balance(ALICE, Asset("USD")) == (1_000_000, 0)


def test_resumed_symbol_trades_again() -> None:
    ex = funded_exchange()
    ex.handle(sell(BOB, "100.00", "1"))
    ex.handle(halt())
    assert kinds(ex.handle(resume())) == ["TradingResumed"]
    assert "TradeExecuted" in kinds(ex.handle(buy(ALICE, "100.00", "1")))


def test_halt_and_resume_reject_unknown_or_redundant_requests() -> None:
    ex = funded_exchange()
    cases = [
        (halt("NOPE"), Reason.UNKNOWN_SYMBOL),
        (resume("NOPE"), Reason.UNKNOWN_SYMBOL),
        (resume(), Reason.NOT_HALTED),
    ]
    for command, reason in cases:
        (event,) = ex.handle(command).events
        assert isinstance(event, CommandRejected) and event.reason is reason
    ex.handle(halt())
    (event,) = ex.handle(halt()).events
    assert isinstance(event, CommandRejected) and event.reason is Reason.ALREADY_HALTED
