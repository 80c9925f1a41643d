"""Pure projection arithmetic: average cost and realized P&L, unit conversion, reservations."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from domain.instruments import build_instrument
from infra.kafka_source import envelope_of
from projections.base import Units
from projections.candles import vwap
from projections.portfolios import trade_position
from tests.unit.domain import factories as f


def test_buying_twice_averages_the_cost_by_quantity() -> None:
    qty, cost, realized = trade_position(D(0), D(0), D(0), D(2), D("100"))
    qty, cost, realized = trade_position(qty, cost, realized, D(1), D("103"))
    assert (qty, cost, realized) == (D(3), D("101"), D(0))


def test_selling_part_of_a_long_realizes_the_difference_and_keeps_the_cost() -> None:
    assert trade_position(D(3), D("101"), D(0), D(-2), D("105")) == (D(1), D("101"), D(8))


def test_selling_through_zero_opens_a_short_at_the_trade_price() -> None:
    assert trade_position(D(1), D("101"), D(0), D(-3), D("99")) == (D(-2), D("99"), D(-2))


def test_covering_a_short_below_its_cost_is_a_gain() -> None:
    assert trade_position(D(-2), D("99"), D(0), D(2), D("97")) == (D(0), D(0), D(4))


def test_units_convert_ticks_lots_and_atoms_exactly_and_match_the_domains_reservation() -> None:
    listing = f.list_instrument(tick_size=D("0.05"), lot_size=D("0.2"), min_qty=D("0.2"))
    fields = ("symbol", "base", "quote", "base_decimals", "quote_decimals", "tick_size",
              "lot_size", "min_qty", "max_qty", "reference_price", "price_band_bps",
              "maker_fee_bps", "taker_fee_bps")  # fmt: skip
    inst = build_instrument(**{k: getattr(listing, k) for k in fields})
    u = Units("ABC-USD", "ABC", "USD", 2, 2, D("0.05"), D("0.2"), 10, 20)
    assert u.price(2001) == D("100.05") and u.qty(7) == D("1.4")
    assert u.quote_amount(12345) == D("123.45") and u.base_amount(5) == D("0.05")
    assert u.quote_atoms_per_tick_lot == inst.quote_atoms_per_tick_lot
    assert u.base_atoms_per_lot == inst.base_atoms_per_lot
    assert [u.buy_unit_cost(t) for t in (1, 999, 2001)] == [
        inst.buy_unit_cost(t) for t in (1, 999, 2001)
    ]


def test_vwap_is_rounded_half_even_to_twelve_places() -> None:
    assert vwap(D("200"), D("3")) == D("66.666666666667")
    assert vwap(D("1.0000000000005"), D("1")) == D("1.000000000000")


def test_a_kafka_message_without_a_position_header_is_refused() -> None:
    with pytest.raises(ValueError, match="position header"):
        envelope_of([("event_type", b"AccountOpened")], b"{}")
