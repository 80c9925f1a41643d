"""Command messages the exchange decides: what a caller asks for, with ids and time from outside.

Prices, quantities and amounts arrive as ``Decimal`` (the boundary); the exchange converts
them exactly to ticks, lots and atoms and rejects what does not fit. Construction refuses
floats with ``TypeError``, and finite decimals with more than ``MAX_DIGITS`` significant
digits or an exponent beyond ``±MAX_EXPONENT`` with ``ValueError``. ``command_id`` must be
unique per command; ``timestamp_ns`` is UTC nanoseconds supplied by the caller (the domain
never reads a clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.events import AlertCondition, AlertId
from domain.values import (
    AccountId,
    Asset,
    ClientOrderId,
    OrderId,
    OrderType,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
    decimal_out_of_range,
)


def _check_decimal(value: object, name: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    problem = decimal_out_of_range(value)
    if problem is not None:
        raise ValueError(f"{name} has {problem}")


def _check_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    command_id: str
    correlation_id: str
    timestamp_ns: int

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListInstrument(Command):
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

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        for name in ("tick_size", "lot_size", "min_qty", "max_qty", "reference_price"):
            _check_decimal(getattr(self, name), name, optional=False)
        for name in (
            "base_decimals",
            "quote_decimals",
            "price_band_bps",
            "maker_fee_bps",
            "taker_fee_bps",
        ):
            _check_int(getattr(self, name), name)


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltTrading(Command):
    symbol: Symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeTrading(Command):
    symbol: Symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccount(Command):
    account_id: AccountId


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositFunds(Command):
    account_id: AccountId
    asset: Asset
    amount: Decimal

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        _check_decimal(self.amount, "amount", optional=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawFunds(Command):
    account_id: AccountId
    asset: Asset
    amount: Decimal

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        _check_decimal(self.amount, "amount", optional=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command):
    """Place an order. ``price`` is None for a market order; a market buy may give
    ``quote_budget`` (quote asset amount to spend, fees included) instead of ``quantity``.
    Market orders never rest: GTC and IOC both mean "take what is there, cancel the rest";
    FOK means all or nothing."""

    account_id: AccountId
    symbol: Symbol
    side: Side
    order_type: OrderType
    order_id: OrderId
    client_order_id: ClientOrderId
    price: Decimal | None
    quantity: Decimal | None
    quote_budget: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        _check_decimal(self.price, "price", optional=True)
        _check_decimal(self.quantity, "quantity", optional=True)
        _check_decimal(self.quote_budget, "quote_budget", optional=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder(Command):
    account_id: AccountId
    order_id: OrderId


@dataclass(frozen=True, slots=True, kw_only=True)
class AmendOrder(Command):
    """Change a resting order's price and/or its open (remaining) quantity.

    A pure quantity reduction keeps time priority; anything else re-queues the order at the
    back of its (new) price level. An amend that would cross the book is rejected
    (``amend_would_take``): amends never trade."""

    account_id: AccountId
    order_id: OrderId
    new_price: Decimal | None = None
    new_quantity: Decimal | None = None

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        _check_decimal(self.new_price, "new_price", optional=True)
        _check_decimal(self.new_quantity, "new_quantity", optional=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAllOrders(Command):
    account_id: AccountId
    symbol: Symbol | None = None


# -- price alerts (decided by domain.alerts, not by the exchange) ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateAlert(Command):
    """Arm an alert on ``symbol`` for ``account_id``. ``crosses_above``/``crosses_below`` take
    ``level`` (a price); ``moves_pct`` takes ``pct`` (percent, e.g. ``Decimal("2.5")``) and
    ``window_s`` (seconds)."""

    account_id: AccountId
    alert_id: AlertId
    symbol: Symbol
    condition: AlertCondition
    level: Decimal | None = None
    pct: Decimal | None = None
    window_s: int | None = None

    def __post_init__(self) -> None:
        _check_int(self.timestamp_ns, "timestamp_ns")
        _check_decimal(self.level, "level", optional=True)
        _check_decimal(self.pct, "pct", optional=True)
        if self.window_s is not None:
            _check_int(self.window_s, "window_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAlert(Command):
    account_id: AccountId
    alert_id: AlertId


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerAlert(Command):
    """Fire an alert on the trade that met its condition (sent by the alert evaluator).

    ``reference_price_ticks``/``reference_at_ns``: the price the trade crossed from, or moved
    from within the window. Triggering is idempotent: an alert that already triggered (or was
    canceled) stays as it is and nothing is written."""

    alert_id: AlertId
    trade_id: int
    trade_position: int
    price_ticks: int
    traded_at_ns: int
    reference_price_ticks: int
    reference_at_ns: int

    def __post_init__(self) -> None:
        for name in (
            "timestamp_ns",
            "trade_id",
            "trade_position",
            "price_ticks",
            "traded_at_ns",
            "reference_price_ticks",
            "reference_at_ns",
        ):
            _check_int(getattr(self, name), name)


ALERT_COMMANDS: tuple[type[Command], ...] = (CreateAlert, CancelAlert, TriggerAlert)
