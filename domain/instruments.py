"""Instrument specifications and the integer arithmetic of prices, notionals and fees.

An instrument trades ``base`` against ``quote``. Inside the domain a price is an int number
of ticks and a quantity an int number of lots. Listing validates that one tick times one
lot is a whole number of quote atoms (``quote_atoms_per_tick_lot``) and one lot a whole
number of base atoms (``base_atoms_per_lot``), so every notional is an exact int.

Fees are charged in the quote asset, rounded *up* to the quote atom per fill:
``fee = ceil(notional * bps / 10_000)``. A buy reserves, per lot, its limit price plus the
worst-case fee on one lot, also rounded up (``buy_unit_cost``); since
``ceil(q * x) <= q * ceil(x)`` this always covers the real cost of any fill at or below
the limit price, so a reservation never runs short.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from domain.values import (
    MAX_LISTING_NOTIONAL,
    MAX_UNITS,
    Asset,
    ConversionError,
    Symbol,
    TradingStatus,
    to_units,
)

BPS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    symbol: Symbol
    base: Asset
    quote: Asset
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    min_qty_lots: int
    max_qty_lots: int
    reference_price_ticks: int
    price_band_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
    status: TradingStatus
    quote_atoms_per_tick_lot: int
    base_atoms_per_lot: int

    @property
    def max_fee_bps(self) -> int:
        return self.maker_fee_bps if self.maker_fee_bps > self.taker_fee_bps else self.taker_fee_bps

    def with_status(self, status: TradingStatus) -> Instrument:
        return replace(self, status=status)

    # -- boundary conversions (may raise ConversionError) --------------------------------
    def price_to_ticks(self, price: Decimal) -> int:
        return to_units(price, self.tick_size)

    def qty_to_lots(self, qty: Decimal) -> int:
        return to_units(qty, self.lot_size)

    def ticks_to_price(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def lots_to_qty(self, lots: int) -> Decimal:
        return self.lot_size * lots

    # -- integer arithmetic (hot path) ---------------------------------------------------
    def notional(self, price_ticks: int, qty_lots: int) -> int:
        """Quote atoms for ``qty_lots`` at ``price_ticks``."""
        return price_ticks * qty_lots * self.quote_atoms_per_tick_lot

    def base_atoms(self, qty_lots: int) -> int:
        return qty_lots * self.base_atoms_per_lot

    def buy_unit_cost(self, price_ticks: int) -> int:
        """Quote atoms a buy reserves per lot at limit ``price_ticks`` (price + worst fee)."""
        one_lot = price_ticks * self.quote_atoms_per_tick_lot
        return one_lot + fee(one_lot, self.max_fee_bps)

    def taker_unit_cost(self, price_ticks: int) -> int:
        """Quote atoms one lot costs a taker buying at ``price_ticks``, fee rounded up."""
        one_lot = price_ticks * self.quote_atoms_per_tick_lot
        return one_lot + fee(one_lot, self.taker_fee_bps)

    def reference_band(self, reference_ticks: int) -> tuple[int, int]:
        """Lowest and highest price in ticks allowed around ``reference_ticks``.

        Rounded inwards, so a price at the edge is never further than the band.
        """
        low = -((-reference_ticks * (BPS - self.price_band_bps)) // BPS)
        high = (reference_ticks * (BPS + self.price_band_bps)) // BPS
        return (max(low, 1), high)


def fee(notional: int, bps: int) -> int:
    """Fee in quote atoms on ``notional``, rounded up to the atom."""
    return -((-notional * bps) // BPS)


def _coefficient(value: Decimal) -> int:
    if not value.is_finite():
        return 0  # refused below, as not a whole number of units
    return int("".join(map(str, value.as_tuple().digits)))


def _bounded(name: str, units: int) -> int:
    if abs(units) >= MAX_UNITS:
        raise ListingError(f"{name} reaches 10^36 units: too large")
    return units


class ListingError(ValueError):
    """An instrument specification that cannot be listed; ``detail`` says why."""


def build_instrument(
    *,
    symbol: Symbol,
    base: Asset,
    quote: Asset,
    base_decimals: int,
    quote_decimals: int,
    tick_size: Decimal,
    lot_size: Decimal,
    min_qty: Decimal,
    max_qty: Decimal,
    reference_price: Decimal,
    price_band_bps: int,
    maker_fee_bps: int,
    taker_fee_bps: int,
) -> Instrument:
    """Validate a listing and return the instrument; raise ``ListingError`` if invalid."""
    if base == quote:
        raise ListingError("base and quote must differ")
    for name, dec in (("base_decimals", base_decimals), ("quote_decimals", quote_decimals)):
        if not 0 <= dec <= 18:
            raise ListingError(f"{name} must be within 0..18")
    if tick_size.is_nan() or lot_size.is_nan() or tick_size <= 0 or lot_size <= 0:
        raise ListingError("tick_size and lot_size must be positive")
    for name, bps in (("maker_fee_bps", maker_fee_bps), ("taker_fee_bps", taker_fee_bps)):
        if not 0 <= bps <= BPS:
            raise ListingError(f"{name} must be within 0..{BPS}")
    if not 0 < price_band_bps < BPS:
        raise ListingError(f"price_band_bps must be within 1..{BPS - 1}")
    if _coefficient(tick_size) * _coefficient(lot_size) >= 10**28:
        # the product would be rounded by the default decimal context
        raise ListingError("tick_size * lot_size has more than 28 significant digits")
    try:
        quote_per_tick_lot = _bounded(
            "tick_size * lot_size",
            to_units(tick_size * lot_size, Decimal(1).scaleb(-quote_decimals)),
        )
    except ConversionError as exc:
        raise ListingError("tick_size * lot_size is not a whole number of quote atoms") from exc
    try:
        base_per_lot = _bounded("lot_size", to_units(lot_size, Decimal(1).scaleb(-base_decimals)))
    except ConversionError as exc:
        raise ListingError("lot_size is not a whole number of base atoms") from exc
    try:
        min_lots = to_units(min_qty, lot_size)
        max_lots = to_units(max_qty, lot_size)
    except ConversionError as exc:
        raise ListingError("min_qty and max_qty must be multiples of lot_size") from exc
    _bounded("min_qty", min_lots)
    _bounded("max_qty", max_lots)
    if not 0 < min_lots <= max_lots:
        raise ListingError("need 0 < min_qty <= max_qty")
    try:
        reference_ticks = _bounded("reference_price", to_units(reference_price, tick_size))
    except ConversionError as exc:
        raise ListingError("reference_price must be a multiple of tick_size") from exc
    if reference_ticks <= 0:
        raise ListingError("reference_price must be positive")
    if (
        max_lots * quote_per_tick_lot * reference_ticks >= MAX_LISTING_NOTIONAL
        or max_lots * base_per_lot >= MAX_LISTING_NOTIONAL
    ):
        raise ListingError("max_qty at reference_price reaches 10^30 atoms: too large")
    return Instrument(
        symbol=symbol,
        base=base,
        quote=quote,
        base_decimals=base_decimals,
        quote_decimals=quote_decimals,
        tick_size=tick_size,
        lot_size=lot_size,
        min_qty_lots=min_lots,
        max_qty_lots=max_lots,
        reference_price_ticks=reference_ticks,
        price_band_bps=price_band_bps,
        maker_fee_bps=maker_fee_bps,
        taker_fee_bps=taker_fee_bps,
        status=TradingStatus.TRADING,
        quote_atoms_per_tick_lot=quote_per_tick_lot,
        base_atoms_per_lot=base_per_lot,
    )
