"""Domain events: the explicit, versioned record of every decision, and their JSON-safe form.

Every event is a frozen, slotted dataclass with a class-level ``event_type`` and
``schema_version``. Amounts are ints in instrument/asset units (``*_ticks``, ``*_lots``,
``*_atoms``); ``Decimal`` fields only describe listings and rejected requests.
``to_dict``/``from_dict`` convert to and from a JSON-safe dict (Decimals as strings, never
floats) through a registry keyed by ``event_type``. Store-level metadata (event id, stream,
version, global position) is added by the event store, not here.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from domain.values import (
    AccountId,
    Asset,
    CancelReason,
    ClientOrderId,
    OrderId,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events: the command that caused it and when (UTC nanoseconds)."""

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    command_id: str
    correlation_id: str
    timestamp_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentListed(Event):
    event_type: ClassVar[str] = "InstrumentListed"
    schema_version: ClassVar[int] = 1

    symbol: Symbol
    base: Asset
    quote: Asset
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    reference_price: Decimal
    price_band_bps: int
    maker_fee_bps: int
    taker_fee_bps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingHalted(Event):
    event_type: ClassVar[str] = "TradingHalted"
    schema_version: ClassVar[int] = 1

    symbol: Symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingResumed(Event):
    event_type: ClassVar[str] = "TradingResumed"
    schema_version: ClassVar[int] = 1

    symbol: Symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    event_type: ClassVar[str] = "AccountOpened"
    schema_version: ClassVar[int] = 1

    account_id: AccountId


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsDeposited(Event):
    event_type: ClassVar[str] = "FundsDeposited"
    schema_version: ClassVar[int] = 1

    account_id: AccountId
    asset: Asset
    amount_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsWithdrawn(Event):
    event_type: ClassVar[str] = "FundsWithdrawn"
    schema_version: ClassVar[int] = 1

    account_id: AccountId
    asset: Asset
    amount_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawalRejected(Event):
    event_type: ClassVar[str] = "WithdrawalRejected"
    schema_version: ClassVar[int] = 1

    account_id: AccountId
    asset: Asset
    requested: Decimal
    reason: Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted(Event):
    """Order passed validation; ``reserved_atoms`` of ``reserved_asset`` are now held.

    ``price_ticks`` is the effective limit (for market orders, the price-band edge);
    ``qty_lots`` is 0 and ``quote_budget_atoms`` positive for a market buy by budget.
    """

    event_type: ClassVar[str] = "OrderAccepted"
    schema_version: ClassVar[int] = 1

    order_id: OrderId
    account_id: AccountId
    symbol: Symbol
    client_order_id: ClientOrderId
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    price_ticks: int
    qty_lots: int
    quote_budget_atoms: int
    reserved_asset: Asset
    reserved_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(Event):
    event_type: ClassVar[str] = "OrderRejected"
    schema_version: ClassVar[int] = 1

    order_id: OrderId
    account_id: AccountId
    symbol: Symbol
    client_order_id: ClientOrderId
    reason: Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRested(Event):
    """The unfilled remainder of an order was placed in the book."""

    event_type: ClassVar[str] = "OrderRested"
    schema_version: ClassVar[int] = 1

    order_id: OrderId
    account_id: AccountId
    symbol: Symbol
    side: Side
    price_ticks: int
    qty_lots: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeExecuted(Event):
    """A maker and a taker traded ``qty_lots`` at the maker's price; fees in quote atoms."""

    event_type: ClassVar[str] = "TradeExecuted"
    schema_version: ClassVar[int] = 1

    symbol: Symbol
    trade_id: int
    price_ticks: int
    qty_lots: int
    notional_atoms: int
    maker_order_id: OrderId
    taker_order_id: OrderId
    maker_account_id: AccountId
    taker_account_id: AccountId
    taker_side: Side
    maker_fee_atoms: int
    taker_fee_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCanceled(Event):
    """The order is closed; ``released_atoms`` of ``released_asset`` went back to available."""

    event_type: ClassVar[str] = "OrderCanceled"
    schema_version: ClassVar[int] = 1

    order_id: OrderId
    account_id: AccountId
    symbol: Symbol
    reason: CancelReason
    remaining_lots: int
    released_asset: Asset
    released_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAmended(Event):
    """A resting order's price and/or open quantity changed; it now reserves ``reserved_atoms``.

    ``priority_kept`` is true only for a pure quantity reduction; otherwise the order moved
    to the back of the queue at ``new_price_ticks``.
    """

    event_type: ClassVar[str] = "OrderAmended"
    schema_version: ClassVar[int] = 1

    order_id: OrderId
    account_id: AccountId
    symbol: Symbol
    old_price_ticks: int
    new_price_ticks: int
    old_qty_lots: int
    new_qty_lots: int
    priority_kept: bool
    reserved_atoms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(Event):
    """A non-order command (or a cancel/amend) was refused; nothing changed."""

    event_type: ClassVar[str] = "CommandRejected"
    schema_version: ClassVar[int] = 1

    command_type: str
    subject: str
    reason: Reason
    detail: str


EVENT_TYPES: tuple[type[Event], ...] = (
    InstrumentListed,
    TradingHalted,
    TradingResumed,
    AccountOpened,
    FundsDeposited,
    FundsWithdrawn,
    WithdrawalRejected,
    OrderAccepted,
    OrderRejected,
    OrderRested,
    TradeExecuted,
    OrderCanceled,
    OrderAmended,
    CommandRejected,
)

REGISTRY: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_TYPES}

JsonValue = str | int | bool | None
_Decoder = Callable[[Any], Any]


class EventDecodeError(ValueError):
    """A dict that is not a valid serialized event."""


def _encode(value: object) -> JsonValue:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError("floats are never serialized")
    if value is None or isinstance(value, str | int):
        return value
    raise TypeError(f"cannot serialize {type(value).__name__}")


def to_dict(event: Event) -> dict[str, JsonValue]:
    """JSON-safe dict of ``event``: ``event_type``, ``schema_version`` then its fields."""
    out: dict[str, JsonValue] = {
        "event_type": event.event_type,
        "schema_version": event.schema_version,
    }
    for f in fields(event):
        out[f.name] = _encode(getattr(event, f.name))
    return out


def _decoder_for(hint: Any) -> _Decoder:
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:  # NewType
        return _decoder_for(supertype)
    if hint is Decimal:
        return _decode_decimal
    if hint is bool:
        return _decode_bool
    if hint is int:
        return _decode_int
    if hint is str:
        return _decode_str
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    raise TypeError(f"no decoder for {hint!r}")


def _decode_decimal(raw: Any) -> Decimal:
    if not isinstance(raw, str):
        raise EventDecodeError(f"expected a decimal string, got {raw!r}")
    return Decimal(raw)


def _decode_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise EventDecodeError(f"expected a bool, got {raw!r}")
    return raw


def _decode_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise EventDecodeError(f"expected an int, got {raw!r}")
    return raw


def _decode_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise EventDecodeError(f"expected a string, got {raw!r}")
    return raw


def _build_decoders() -> dict[str, tuple[tuple[str, _Decoder], ...]]:
    table: dict[str, tuple[tuple[str, _Decoder], ...]] = {}
    for cls in EVENT_TYPES:
        hints = typing.get_type_hints(cls)
        table[cls.event_type] = tuple((f.name, _decoder_for(hints[f.name])) for f in fields(cls))
    return table


_DECODERS = _build_decoders()


def from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``to_dict`` output; raise ``EventDecodeError`` if invalid."""
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in REGISTRY:
        raise EventDecodeError(f"unknown event_type {event_type!r}")
    cls = REGISTRY[event_type]
    if data.get("schema_version") != cls.schema_version:
        raise EventDecodeError(
            f"{event_type}: schema_version {data.get('schema_version')!r} is not "
            f"{cls.schema_version} (no upcaster)"
        )
    kwargs: dict[str, Any] = {}
    for name, decode in _DECODERS[event_type]:
        if name not in data:
            raise EventDecodeError(f"{event_type}: missing field {name!r}")
        try:
            kwargs[name] = decode(data[name])
        except (ValueError, ArithmeticError) as exc:
            raise EventDecodeError(f"{event_type}.{name}: {exc}") from exc
    return cls(**kwargs)
