"""Listing validation, band edges and fee rounding of instruments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.instruments import Instrument, ListingError, build_instrument, fee
from domain.values import Asset, Symbol


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "symbol": Symbol("BTC-USD"),
        "base": Asset("BTC"),
        "quote": Asset("USD"),
        "base_decimals": 8,
        "quote_decimals": 6,
        "tick_size": Decimal("0.01"),
        "lot_size": Decimal("0.001"),
        "min_qty": Decimal("0.001"),
        "max_qty": Decimal("100"),
        "reference_price": Decimal("30000.00"),
        "price_band_bps": 500,
        "maker_fee_bps": 10,
        "taker_fee_bps": 25,
    }
    base.update(overrides)
    return base


def listed(**overrides: Any) -> Instrument:
    return build_instrument(**spec(**overrides))


def test_listing_derives_integer_units_per_tick_lot_and_per_lot() -> None:
    inst = listed()
    assert inst.quote_atoms_per_tick_lot == 10  # 0.01 * 0.001 = 0.00001 USD = 10 micro-USD
    assert inst.base_atoms_per_lot == 100_000
    assert inst.reference_price_ticks == 3_000_000
    assert inst.notional(3_000_000, 2) == 60_000_000  # 60 USD


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quote_decimals": 2}, "quote atoms"),
        ({"base_decimals": 2}, "base atoms"),
        ({"min_qty": Decimal("0.0015")}, "multiples of lot_size"),
        ({"min_qty": Decimal("2"), "max_qty": Decimal("1")}, "min_qty <= max_qty"),
        ({"reference_price": Decimal("1.001")}, "multiple of tick_size"),
        ({"reference_price": Decimal("0")}, "positive"),
        ({"tick_size": Decimal("0")}, "positive"),
        ({"maker_fee_bps": -1}, "maker_fee_bps"),
        ({"taker_fee_bps": 10_001}, "taker_fee_bps"),
        ({"price_band_bps": 0}, "price_band_bps"),
        ({"quote": Asset("BTC")}, "differ"),
    ],
)
def test_listing_rejects_specifications_that_are_not_exact(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ListingError, match=message):
        listed(**overrides)


def test_fees_are_rounded_up_to_the_quote_atom() -> None:
    assert fee(10_000, 20) == 20
    assert fee(10_001, 20) == 21  # 20.002 -> 21
    assert fee(1, 1) == 1
    assert fee(0, 20) == 0
    assert fee(12_345, 0) == 0


def test_buy_unit_cost_covers_the_worst_fee_of_either_role() -> None:
    inst = listed(maker_fee_bps=30, taker_fee_bps=10)
    one_lot = 3_000_000 * 10
    assert inst.buy_unit_cost(3_000_000) == one_lot + fee(one_lot, 30)
    assert inst.taker_unit_cost(3_000_000) == one_lot + fee(one_lot, 10)


def test_price_band_edges_round_inwards() -> None:
    inst = listed(price_band_bps=333)
    low, high = inst.reference_band(1001)
    assert (low, high) == (968, 1034)  # 967.667 -> 968, 1034.333 -> 1034


def test_boundary_conversions_are_exact() -> None:
    inst = listed()
    assert inst.price_to_ticks(Decimal("30000.05")) == 3_000_005
    assert inst.ticks_to_price(3_000_005) == Decimal("30000.05")
    assert inst.lots_to_qty(1500) == Decimal("1.500")
