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
from enum import Enum, StrEnum
from typing import Any, ClassVar, NewType, TypeVar

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


# -- price alerts (domain.alerts): decided in Python beside the exchange, never by the kernel --

AlertId = NewType("AlertId", str)


class AlertCondition(StrEnum):
    """When an alert fires: the price crosses a level, or moves by a percentage in a window."""

    CROSSES_ABOVE = "crosses_above"
    CROSSES_BELOW = "crosses_below"
    MOVES_PCT = "moves_pct"


class AlertRejectReason(StrEnum):
    """Machine-readable reason of an ``AlertRejected`` (kept apart from ``Reason``, which the
    Rust kernel mirrors)."""

    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNKNOWN_ALERT = "unknown_alert"
    DUPLICATE_ALERT_ID = "duplicate_alert_id"
    NOT_ALERT_OWNER = "not_alert_owner"
    ALREADY_TRIGGERED = "already_triggered"
    ALREADY_CANCELED = "already_canceled"
    INVALID_CONDITION = "invalid_condition"
    INVALID_LEVEL = "invalid_level"
    INVALID_PCT = "invalid_pct"
    INVALID_WINDOW = "invalid_window"
    TOO_MANY_ALERTS = "too_many_alerts"
    CONDITION_NOT_MET = "condition_not_met"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCreated(Event):
    """An alert is armed. ``level_ticks`` for the crossings (0 otherwise); ``pct_bps`` (1% is
    100) and ``window_s`` for ``moves_pct`` (0 otherwise). ``last_price_ticks`` is the
    symbol's last trade price (else its listing reference) when the alert was created: the
    price a crossing starts from."""

    event_type: ClassVar[str] = "AlertCreated"
    schema_version: ClassVar[int] = 1

    alert_id: AlertId
    account_id: AccountId
    symbol: Symbol
    condition: AlertCondition
    level_ticks: int
    pct_bps: int
    window_s: int
    last_price_ticks: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCanceled(Event):
    event_type: ClassVar[str] = "AlertCanceled"
    schema_version: ClassVar[int] = 1

    alert_id: AlertId
    account_id: AccountId
    symbol: Symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertTriggered(Event):
    """The alert fired on trade ``trade_id`` (log position ``trade_position``) at
    ``price_ticks``. ``reference_price_ticks``/``reference_at_ns``: the price it crossed from
    (crossings) or moved from within the window (``moves_pct``). An alert triggers once."""

    event_type: ClassVar[str] = "AlertTriggered"
    schema_version: ClassVar[int] = 1

    alert_id: AlertId
    account_id: AccountId
    symbol: Symbol
    condition: AlertCondition
    trade_id: int
    trade_position: int
    price_ticks: int
    traded_at_ns: int
    reference_price_ticks: int
    reference_at_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRejected(Event):
    """An alert command was refused; nothing changed. ``symbol`` is empty when unknown."""

    event_type: ClassVar[str] = "AlertRejected"
    schema_version: ClassVar[int] = 1

    alert_id: AlertId
    account_id: AccountId
    symbol: Symbol
    command_type: str
    reason: AlertRejectReason
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

# The exchange's events (the Rust kernel is built against exactly this tuple) and the alerts'.
ALERT_EVENT_TYPES: tuple[type[Event], ...] = (
    AlertCreated,
    AlertCanceled,
    AlertTriggered,
    AlertRejected,
)
ALL_EVENT_TYPES: tuple[type[Event], ...] = EVENT_TYPES + ALERT_EVENT_TYPES

REGISTRY: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_TYPES}
ALERT_REGISTRY: dict[str, type[Event]] = {cls.event_type: cls for cls in ALERT_EVENT_TYPES}
_ALL_REGISTRY: dict[str, type[Event]] = {**REGISTRY, **ALERT_REGISTRY}

JsonValue = str | int | bool | None
_Decoder = Callable[[Any], Any]
E = TypeVar("E", bound=Event)
T = TypeVar("T")


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


# ------------------------------------------------------------------ generated fast paths
# Events are built, encoded and decoded millions of times (matching, replay), so each class
# gets three small functions generated from its fields at import time: a positional builder,
# an encoder and a decoder. They give exactly the results of the generic code below them
# (``_slow_to_dict``/``_slow_from_dict``), which still handles every unusual input and
# produces every error message.


def _field_kind(hint: Any) -> Any:
    """The runtime type a field holds: NewTypes resolved to their base type."""
    while getattr(hint, "__supertype__", None) is not None:
        hint = hint.__supertype__
    return hint


def _exec(source: str, namespace: dict[str, Any], name: str) -> Any:
    exec(compile(source, f"<domain.events {name}>", "exec"), namespace)
    return namespace[name]


def frozen_builder(cls: type[T]) -> Callable[..., T]:
    """A positional constructor of the frozen, slotted dataclass ``cls`` (fields in order),
    several times cheaper than ``cls(**fields)``.

    A frozen dataclass ``__init__`` stores every field through ``object.__setattr__``. The
    builder instead fills a private twin class that has exactly the same slots (so plain
    attribute stores work) and then relabels the instance as ``cls``: ``__class__``
    assignment is allowed between classes of identical layout. The result is an ordinary
    frozen ``cls`` instance, equal to the one the dataclass ``__init__`` would make.
    """
    if not (cls.__dataclass_params__.frozen and "__slots__" in cls.__dict__):  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    base = cls.__bases__[0]
    twin = type(
        f"_{cls.__name__}Builder",
        (base,),
        {
            "__slots__": cls.__dict__["__slots__"],
            # Both, so that the type's setattr slot is the plain C one (stores stay cheap).
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )
    body = "".join(f"    _o.{n} = {n}\n" for n in names)
    source = (
        f"def build({', '.join(names)}):\n"
        "    _o = _tc_new(_tc_twin)\n"
        f"{body}"
        "    _o.__class__ = _tc_cls\n"
        "    return _o\n"
    )
    namespace: dict[str, Any] = {"_tc_new": object.__new__, "_tc_twin": twin, "_tc_cls": cls}
    build: Callable[..., T] = _exec(source, namespace, "build")
    return build


_BUILDERS: dict[type[Event], Callable[..., Event]] = {
    cls: frozen_builder(cls) for cls in ALL_EVENT_TYPES
}


def _make_encoder(cls: type[Event]) -> Callable[[Event], dict[str, JsonValue]]:
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {"_encode": _encode, "Decimal": Decimal}
    items = [f"'event_type': {cls.event_type!r}", f"'schema_version': {cls.schema_version!r}"]
    for i, f in enumerate(fields(cls)):
        kind = _field_kind(hints[f.name])
        v = f"_e.{f.name}"
        if kind is Decimal:
            expr = f"(str({v}) if type({v}) is Decimal else _encode({v}))"
        elif isinstance(kind, type) and issubclass(kind, Enum):
            namespace[f"_tc_enum{i}"] = kind
            expr = f"({v}.value if type({v}) is _tc_enum{i} else _encode({v}))"
        elif kind in (str, int, bool):
            expr = f"({v} if type({v}) is {kind.__name__} else _encode({v}))"
        else:
            expr = f"_encode({v})"
        items.append(f"{f.name!r}: {expr}")
    source = "def encode(_e):\n    return {" + ", ".join(items) + "}\n"
    encoder: Callable[[Event], dict[str, JsonValue]] = _exec(source, namespace, "encode")
    return encoder


_ENCODERS: dict[type[Event], Callable[[Event], dict[str, JsonValue]]] = {
    cls: _make_encoder(cls) for cls in ALL_EVENT_TYPES
}


class _NotFast(Exception):
    """The fast decoder met something unusual; the generic decoder decides."""


def _make_decoder(cls: type[Event]) -> Callable[[dict[str, Any]], Event]:
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "_tc_build": _BUILDERS[cls],
        "_tc_not_fast": _NotFast,
        "Decimal": Decimal,
    }
    lines = ["def decode(_d):"]
    names = []
    for i, f in enumerate(fields(cls)):
        kind = _field_kind(hints[f.name])
        n = f"_v{i}"
        names.append(n)
        lines.append(f"    {n} = _d[{f.name!r}]")
        if kind is Decimal:
            lines.append(f"    if type({n}) is not str: raise _tc_not_fast")
            lines.append(f"    {n} = Decimal({n})")
        elif isinstance(kind, type) and issubclass(kind, Enum):
            namespace[f"_tc_members{i}"] = {m.value: m for m in kind}
            lines.append(f"    {n} = _tc_members{i}[{n}]")
        elif kind in (str, int, bool):
            lines.append(f"    if type({n}) is not {kind.__name__}: raise _tc_not_fast")
        else:
            lines.append("    raise _tc_not_fast")
    lines.append(f"    return _tc_build({', '.join(names)})")
    decoder: Callable[[dict[str, Any]], Event] = _exec("\n".join(lines) + "\n", namespace, "decode")
    return decoder


_DECODER_FNS: dict[str, tuple[int, Callable[[dict[str, Any]], Event]]] = {
    cls.event_type: (cls.schema_version, _make_decoder(cls)) for cls in ALL_EVENT_TYPES
}


def builder(cls: type[E]) -> Callable[..., E]:
    """The positional constructor of event class ``cls`` (arguments in field order)."""
    return _BUILDERS[cls]  # type: ignore[return-value]


# Typed positional builders of the events the matching loop emits (arguments in field order).
new_order_accepted: Callable[
    [
        str,
        str,
        int,
        OrderId,
        AccountId,
        Symbol,
        ClientOrderId,
        Side,
        OrderType,
        TimeInForce,
        bool,
        SelfTradePrevention,
        int,
        int,
        int,
        Asset,
        int,
    ],
    OrderAccepted,
] = builder(OrderAccepted)
new_order_rejected: Callable[
    [str, str, int, OrderId, AccountId, Symbol, ClientOrderId, Reason], OrderRejected
] = builder(OrderRejected)
new_order_rested: Callable[
    [str, str, int, OrderId, AccountId, Symbol, Side, int, int], OrderRested
] = builder(OrderRested)
new_trade_executed: Callable[
    [
        str,
        str,
        int,
        Symbol,
        int,
        int,
        int,
        int,
        OrderId,
        OrderId,
        AccountId,
        AccountId,
        Side,
        int,
        int,
    ],
    TradeExecuted,
] = builder(TradeExecuted)
new_order_canceled: Callable[
    [str, str, int, OrderId, AccountId, Symbol, CancelReason, int, Asset, int], OrderCanceled
] = builder(OrderCanceled)


# ------------------------------------------------------------------ public conversions
def to_dict(event: Event) -> dict[str, JsonValue]:
    """JSON-safe dict of ``event``: ``event_type``, ``schema_version`` then its fields."""
    encoder = _ENCODERS.get(type(event))
    if encoder is not None:
        return encoder(event)
    return _slow_to_dict(event)


def from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``to_dict`` output; raise ``EventDecodeError`` if invalid."""
    event_type = data.get("event_type")
    if type(event_type) is str:
        entry = _DECODER_FNS.get(event_type)
        if entry is not None and data.get("schema_version") == entry[0]:
            try:
                return entry[1](data)
            except (_NotFast, KeyError, TypeError, ValueError, ArithmeticError):
                pass  # the generic decoder below raises the precise error
    return _slow_from_dict(data)


def _slow_to_dict(event: Event) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {
        "event_type": event.event_type,
        "schema_version": event.schema_version,
    }
    for f in fields(event):
        out[f.name] = _encode(getattr(event, f.name))
    return out


def _build_decoders() -> dict[str, tuple[tuple[str, _Decoder], ...]]:
    table: dict[str, tuple[tuple[str, _Decoder], ...]] = {}
    for cls in ALL_EVENT_TYPES:
        hints = typing.get_type_hints(cls)
        table[cls.event_type] = tuple((f.name, _decoder_for(hints[f.name])) for f in fields(cls))
    return table


_DECODERS = _build_decoders()


def _slow_from_dict(data: dict[str, Any]) -> Event:
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in _ALL_REGISTRY:
        raise EventDecodeError(f"unknown event_type {event_type!r}")
    cls = _ALL_REGISTRY[event_type]
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
