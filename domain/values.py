"""Value types of the domain: identifiers, enums, rejection reasons and exact unit conversion.

Money and quantities are plain ``int`` inside the domain: balances in asset atoms (the
smallest unit of an asset, ``10**-decimals``), prices in ticks and quantities in lots of an
instrument. ``Decimal`` appears only at the boundary (commands, listings), and the helpers
here convert it exactly: a value that is not a whole number of units is refused, never
rounded, and a ``float`` is refused with ``TypeError``.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import NewType

Symbol = NewType("Symbol", str)
AccountId = NewType("AccountId", str)
OrderId = NewType("OrderId", str)
ClientOrderId = NewType("ClientOrderId", str)
Asset = NewType("Asset", str)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class SelfTradePrevention(StrEnum):
    CANCEL_TAKER = "cancel_taker"
    CANCEL_MAKER = "cancel_maker"
    CANCEL_BOTH = "cancel_both"


class TradingStatus(StrEnum):
    TRADING = "trading"
    HALTED = "halted"


class Reason(StrEnum):
    """Machine-readable reason of a rejection (OrderRejected, CommandRejected, ...)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    TICK_SIZE = "tick_size"
    LOT_SIZE = "lot_size"
    MIN_QTY = "min_qty"
    MAX_QTY = "max_qty"
    PRICE_BAND = "price_band"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    AMEND_WOULD_TAKE = "amend_would_take"
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_ASSET = "unknown_asset"
    TRADING_HALTED = "trading_halted"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_ORDER = "unknown_order"
    NOT_ORDER_OWNER = "not_order_owner"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_TIME_IN_FORCE = "invalid_time_in_force"
    INVALID_POST_ONLY = "invalid_post_only"
    INVALID_CLIENT_ORDER_ID = "invalid_client_order_id"
    NOTHING_TO_AMEND = "nothing_to_amend"
    ACCOUNT_EXISTS = "account_exists"
    INSTRUMENT_EXISTS = "instrument_exists"
    INVALID_INSTRUMENT = "invalid_instrument"
    ASSET_DECIMALS_MISMATCH = "asset_decimals_mismatch"
    ALREADY_HALTED = "already_halted"
    NOT_HALTED = "not_halted"


class CancelReason(StrEnum):
    """Why an order left the book (or never reached it) without filling completely."""

    REQUESTED = "requested"
    IOC_REMAINDER = "ioc_remainder"
    FOK_UNFILLED = "fok_unfilled"
    SELF_TRADE_PREVENTION = "self_trade_prevention"
    MARKET_NO_LIQUIDITY = "market_no_liquidity"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCEL_ALL = "cancel_all"


class ConversionError(ValueError):
    """A boundary value is not a whole number of units (or not a finite number)."""


def require_decimal(value: object, name: str = "value") -> Decimal:
    """Return ``value`` as a finite ``Decimal``; floats and bools raise ``TypeError``.

    ``int`` and ``str`` are accepted because they convert exactly.
    """
    if isinstance(value, bool | float):
        raise TypeError(f"{name} must be Decimal, int or str, not {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value)
        except ArithmeticError as exc:
            raise ConversionError(f"{name}: not a decimal number: {value!r}") from exc
    else:
        raise TypeError(f"{name} must be Decimal, int or str, not {type(value).__name__}")
    if not result.is_finite():
        raise ConversionError(f"{name}: not a finite number: {value!r}")
    return result


MAX_DIGITS = 38
"""Most significant digits a price, quantity or amount may have (commands refuse more)."""

MAX_EXPONENT = 60
"""Largest decimal exponent, either sign, of a price, quantity or amount in a command."""


def decimal_out_of_range(value: Decimal) -> str | None:
    """Why a finite price, quantity or amount is beyond what commands carry (``MAX_DIGITS``,
    ``MAX_EXPONENT``), or None; non-finite values are for the exchange to decide."""
    if not value.is_finite():
        return None
    _, digits, exponent = value.as_tuple()
    if len(digits) > MAX_DIGITS:
        return f"more than {MAX_DIGITS} significant digits"
    if abs(int(exponent)) > MAX_EXPONENT:
        return f"an exponent beyond ±{MAX_EXPONENT}"
    return None


MAX_UNITS = 10**36
"""Listings and balances stay below this many units (ticks, lots, atoms): the kernel's range."""

MAX_LISTING_NOTIONAL = 10**30
"""A listing's largest order at the reference price stays below this many atoms of either
asset, which leaves a factor of a million for prices to move before ``MAX_UNITS``."""


def to_units(value: Decimal, unit: Decimal) -> int:
    """Exact number of ``unit`` in ``value``; raise ``ConversionError`` on a non-multiple.

    >>> to_units(Decimal("1.25"), Decimal("0.05"))
    25
    """
    if isinstance(value, float) or isinstance(unit, float):
        raise TypeError("floats are never accepted for money or quantities")
    if not isinstance(value, Decimal) or not isinstance(unit, Decimal):
        raise TypeError("to_units takes Decimal values")
    if not value.is_finite() or not unit.is_finite() or unit <= 0:
        raise ConversionError(f"cannot express {value} in units of {unit}")
    vn, vd = value.as_integer_ratio()
    un, ud = unit.as_integer_ratio()
    num = vn * ud
    den = vd * un
    units, rest = divmod(num, den)
    if rest:
        raise ConversionError(f"{value} is not a multiple of {unit}")
    return units


def from_units(units: int, unit: Decimal) -> Decimal:
    """The ``Decimal`` worth ``units`` of ``unit`` (exact: Decimal multiplication by an int)."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError("units must be an int")
    return unit * units


def atom(decimals: int) -> Decimal:
    """The smallest unit of an asset with ``decimals`` decimal places, e.g. 2 -> 0.01."""
    return Decimal(1).scaleb(-decimals)


def to_atoms(amount: Decimal, decimals: int) -> int:
    """Exact amount in asset atoms; raise ``ConversionError`` if finer than one atom."""
    return to_units(amount, atom(decimals))


def from_atoms(atoms: int, decimals: int) -> Decimal:
    """The ``Decimal`` amount of ``atoms`` atoms of an asset with ``decimals`` places."""
    return from_units(atoms, atom(decimals))
