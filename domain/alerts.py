"""Price alerts: the decider that creates, cancels and triggers them, and its state.

``Alerts.handle(command, market)`` validates and decides ``CreateAlert``, ``CancelAlert`` and
``TriggerAlert``; every event it decides is applied at once through ``Alerts.apply(event)``,
which only mutates state, so replaying the events on a fresh ``Alerts`` rebuilds the same
state (``state_hash``). What it needs to know about the exchange (does the account exist, a
symbol's tick size and last price) comes through the small ``Market`` port, so the decider
stays pure and the core can answer it cheaply.

Conditions, all on trade prices in ticks (evaluated by ``projections.alert_evaluator``):

* ``crosses_above``: a trade at or above the level when the price before it (the previous
  trade, or the last price when the alert was created) was below the level;
* ``crosses_below``: the mirror image;
* ``moves_pct``: a trade whose price differs by more than ``pct`` percent from the price of a
  trade since the alert was created and at most ``window_s`` seconds older.

An alert triggers at most once: ``TriggerAlert`` on an alert that already triggered or was
canceled is a no-op (``Outcome.duplicate``, nothing written), so a restarted or rebuilt
evaluator, or a redelivered trade, never fires an alert twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from domain.commands import ALERT_COMMANDS, CancelAlert, Command, CreateAlert, TriggerAlert
from domain.events import (
    AccountOpened,
    AlertCanceled,
    AlertCondition,
    AlertCreated,
    AlertId,
    AlertRejected,
    AlertRejectReason,
    AlertTriggered,
    Event,
    InstrumentListed,
)
from domain.outcome import Outcome
from domain.values import AccountId, ConversionError, Symbol, to_units

__all__ = [
    "ALERT_COMMANDS",
    "MAX_ACTIVE_PER_ACCOUNT",
    "MAX_WINDOW_S",
    "Alert",
    "AlertStatus",
    "Alerts",
    "KnownMarket",
    "Market",
    "crossed",
    "moved",
]

MAX_ACTIVE_PER_ACCOUNT = 100
MAX_WINDOW_S = 7 * 86_400
MAX_PCT = Decimal(1000)
PCT_UNIT = Decimal("0.01")  # a basis point of the price: pct is stored as an int of these


class AlertStatus(StrEnum):
    ACTIVE = "active"
    TRIGGERED = "triggered"
    CANCELED = "canceled"


class Market(Protocol):
    """What the decider asks about the exchange (read-only, cheap)."""

    def has_account(self, account_id: str) -> bool: ...

    def tick_size(self, symbol: str) -> Decimal | None:
        """The symbol's tick size, None when it is not listed."""
        ...

    def last_price_ticks(self, symbol: str) -> int:
        """Last trade price, else the listing's reference price (a listed symbol)."""
        ...


@dataclass(slots=True)
class Alert:
    alert_id: str
    account_id: str
    symbol: str
    condition: AlertCondition
    level_ticks: int
    pct_bps: int
    window_s: int
    last_price_ticks: int
    created_at_ns: int
    status: AlertStatus = AlertStatus.ACTIVE
    closed_at_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "condition": self.condition.value,
            "level_ticks": self.level_ticks,
            "pct_bps": self.pct_bps,
            "window_s": self.window_s,
            "last_price_ticks": self.last_price_ticks,
            "created_at_ns": self.created_at_ns,
            "status": self.status.value,
            "closed_at_ns": self.closed_at_ns,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Alert:
        return cls(
            alert_id=str(raw["alert_id"]),
            account_id=str(raw["account_id"]),
            symbol=str(raw["symbol"]),
            condition=AlertCondition(raw["condition"]),
            level_ticks=int(raw["level_ticks"]),
            pct_bps=int(raw["pct_bps"]),
            window_s=int(raw["window_s"]),
            last_price_ticks=int(raw["last_price_ticks"]),
            created_at_ns=int(raw["created_at_ns"]),
            status=AlertStatus(raw["status"]),
            closed_at_ns=int(raw["closed_at_ns"]),
        )


def crossed(condition: AlertCondition, level_ticks: int, before: int, price: int) -> bool:
    """Does a trade at ``price`` cross ``level_ticks`` from ``before`` in the alert's direction?"""
    if condition is AlertCondition.CROSSES_ABOVE:
        return before < level_ticks <= price
    if condition is AlertCondition.CROSSES_BELOW:
        return before > level_ticks >= price
    return False


def moved(pct_bps: int, reference: int, price: int) -> bool:
    """Is ``price`` more than ``pct_bps`` hundredths of a percent away from ``reference``?"""
    return reference > 0 and abs(price - reference) * 10_000 > pct_bps * reference


class KnownMarket:
    """A ``Market`` over the exchange: accounts and tick sizes kept from the events that create
    them (cheap to ask, unlike the kernel's views), last prices from the exchange itself."""

    def __init__(
        self,
        accounts: Iterable[str],
        tick_sizes: dict[str, Decimal],
        last_price: Any,  # Callable[[str], int]: the exchange's reference_price
    ) -> None:
        self.accounts = set(accounts)
        self.tick_sizes = dict(tick_sizes)
        self._last_price = last_price

    def observe(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, AccountOpened):
                self.accounts.add(event.account_id)
            elif isinstance(event, InstrumentListed):
                self.tick_sizes[event.symbol] = event.tick_size

    def has_account(self, account_id: str) -> bool:
        return account_id in self.accounts

    def tick_size(self, symbol: str) -> Decimal | None:
        return self.tick_sizes.get(symbol)

    def last_price_ticks(self, symbol: str) -> int:
        return int(self._last_price(symbol))


class _Rejected(Exception):
    def __init__(self, reason: AlertRejectReason, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Alerts:
    """Every alert ever created, by id (closed ones too: ids are never reused, and a closed
    alert must stay closed)."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self._active: dict[str, int] = {}  # derived: active alerts per account

    # ------------------------------------------------------------------ queries
    def get(self, alert_id: str) -> Alert | None:
        return self.alerts.get(alert_id)

    def of_account(self, account_id: str) -> list[Alert]:
        """The account's alerts, oldest first."""
        return [a for a in self.alerts.values() if a.account_id == account_id]

    def active(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.status is AlertStatus.ACTIVE]

    def __len__(self) -> int:
        return len(self.alerts)

    # ------------------------------------------------------------------ decide
    def handle(self, command: Command, market: Market) -> Outcome:
        """Decide ``command``; every event returned has already been applied."""
        if isinstance(command, TriggerAlert):
            return self._trigger(command)
        if isinstance(command, CreateAlert):
            try:
                event: Event = self._create(command, market)
            except _Rejected as rejected:
                event = self._rejection(command, command.symbol, rejected)
        elif isinstance(command, CancelAlert):
            try:
                event = self._cancel(command)
            except _Rejected as rejected:
                alert = self.alerts.get(command.alert_id)
                symbol = "" if alert is None else alert.symbol
                event = self._rejection(command, symbol, rejected)
        else:
            raise TypeError(f"not an alert command: {type(command).__name__}")
        self.apply(event)
        return Outcome((event,), False)

    def _create(self, cmd: CreateAlert, market: Market) -> AlertCreated:
        if not market.has_account(cmd.account_id):
            raise _Rejected(AlertRejectReason.UNKNOWN_ACCOUNT, f"no account {cmd.account_id}")
        tick = market.tick_size(cmd.symbol)
        if tick is None:
            raise _Rejected(AlertRejectReason.UNKNOWN_SYMBOL, f"{cmd.symbol} is not listed")
        if cmd.alert_id in self.alerts:
            raise _Rejected(AlertRejectReason.DUPLICATE_ALERT_ID, f"{cmd.alert_id} exists")
        level_ticks = pct_bps = window_s = 0
        condition = AlertCondition(cmd.condition)
        if condition is AlertCondition.MOVES_PCT:
            if cmd.level is not None:
                raise _Rejected(AlertRejectReason.INVALID_CONDITION, "moves_pct takes no level")
            pct_bps = _pct_bps(cmd.pct)
            window_s = cmd.window_s if cmd.window_s is not None else 0
            if not 1 <= window_s <= MAX_WINDOW_S:
                raise _Rejected(
                    AlertRejectReason.INVALID_WINDOW,
                    f"window_s is required, from 1 to {MAX_WINDOW_S}",
                )
        else:
            if cmd.pct is not None or cmd.window_s is not None:
                raise _Rejected(
                    AlertRejectReason.INVALID_CONDITION, f"{condition} takes a level only"
                )
            level_ticks = _level_ticks(cmd.level, tick)
        if self._active.get(cmd.account_id, 0) >= MAX_ACTIVE_PER_ACCOUNT:
            raise _Rejected(
                AlertRejectReason.TOO_MANY_ALERTS,
                f"at most {MAX_ACTIVE_PER_ACCOUNT} active alerts per account",
            )
        return AlertCreated(
            command_id=cmd.command_id,
            correlation_id=cmd.correlation_id,
            timestamp_ns=cmd.timestamp_ns,
            alert_id=cmd.alert_id,
            account_id=cmd.account_id,
            symbol=cmd.symbol,
            condition=condition,
            level_ticks=level_ticks,
            pct_bps=pct_bps,
            window_s=window_s,
            last_price_ticks=market.last_price_ticks(cmd.symbol),
        )

    def _cancel(self, cmd: CancelAlert) -> AlertCanceled:
        alert = self.alerts.get(cmd.alert_id)
        if alert is None:
            raise _Rejected(AlertRejectReason.UNKNOWN_ALERT, f"no alert {cmd.alert_id}")
        if alert.account_id != cmd.account_id:
            raise _Rejected(AlertRejectReason.NOT_ALERT_OWNER, f"not an alert of {cmd.account_id}")
        if alert.status is AlertStatus.TRIGGERED:
            raise _Rejected(AlertRejectReason.ALREADY_TRIGGERED)
        if alert.status is AlertStatus.CANCELED:
            raise _Rejected(AlertRejectReason.ALREADY_CANCELED)
        return AlertCanceled(
            command_id=cmd.command_id,
            correlation_id=cmd.correlation_id,
            timestamp_ns=cmd.timestamp_ns,
            alert_id=AlertId(alert.alert_id),
            account_id=AccountId(alert.account_id),
            symbol=Symbol(alert.symbol),
        )

    def _trigger(self, cmd: TriggerAlert) -> Outcome:
        alert = self.alerts.get(cmd.alert_id)
        if alert is not None and alert.status is not AlertStatus.ACTIVE:
            return Outcome((), True)  # fired once already (or canceled): nothing new happens
        try:
            if alert is None:
                raise _Rejected(AlertRejectReason.UNKNOWN_ALERT, f"no alert {cmd.alert_id}")
            if alert.condition is AlertCondition.MOVES_PCT:
                met = moved(alert.pct_bps, cmd.reference_price_ticks, cmd.price_ticks) and (
                    0 <= cmd.traded_at_ns - cmd.reference_at_ns <= alert.window_s * 1_000_000_000
                )
            else:
                met = crossed(
                    alert.condition, alert.level_ticks, cmd.reference_price_ticks, cmd.price_ticks
                )
            if not met:
                raise _Rejected(
                    AlertRejectReason.CONDITION_NOT_MET,
                    f"trade {cmd.trade_id} does not meet {alert.condition}",
                )
        except _Rejected as rejected:
            symbol = "" if alert is None else alert.symbol
            event: Event = AlertRejected(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                alert_id=cmd.alert_id,
                account_id=AccountId("" if alert is None else alert.account_id),
                symbol=Symbol(symbol),
                command_type=type(cmd).__name__,
                reason=rejected.reason,
                detail=rejected.detail,
            )
        else:
            event = AlertTriggered(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                alert_id=cmd.alert_id,
                account_id=AccountId(alert.account_id),
                symbol=Symbol(alert.symbol),
                condition=alert.condition,
                trade_id=cmd.trade_id,
                trade_position=cmd.trade_position,
                price_ticks=cmd.price_ticks,
                traded_at_ns=cmd.traded_at_ns,
                reference_price_ticks=cmd.reference_price_ticks,
                reference_at_ns=cmd.reference_at_ns,
            )
        self.apply(event)
        return Outcome((event,), False)

    @staticmethod
    def _rejection(
        cmd: CreateAlert | CancelAlert, symbol: str, rejected: _Rejected
    ) -> AlertRejected:
        return AlertRejected(
            command_id=cmd.command_id,
            correlation_id=cmd.correlation_id,
            timestamp_ns=cmd.timestamp_ns,
            alert_id=cmd.alert_id,
            account_id=cmd.account_id,
            symbol=Symbol(symbol),
            command_type=type(cmd).__name__,
            reason=rejected.reason,
            detail=rejected.detail,
        )

    # ------------------------------------------------------------------ evolve
    def apply(self, event: Event) -> None:
        """Mutate state by one alert event. Never validates or decides: replay-safe."""
        if isinstance(event, AlertCreated):
            self.alerts[event.alert_id] = Alert(
                alert_id=event.alert_id,
                account_id=event.account_id,
                symbol=event.symbol,
                condition=event.condition,
                level_ticks=event.level_ticks,
                pct_bps=event.pct_bps,
                window_s=event.window_s,
                last_price_ticks=event.last_price_ticks,
                created_at_ns=event.timestamp_ns,
            )
            self._active[event.account_id] = self._active.get(event.account_id, 0) + 1
        elif isinstance(event, AlertCanceled | AlertTriggered):
            alert = self.alerts[event.alert_id]
            if alert.status is AlertStatus.ACTIVE:
                self._active[alert.account_id] -= 1
            alert.status = (
                AlertStatus.CANCELED if isinstance(event, AlertCanceled) else AlertStatus.TRIGGERED
            )
            alert.closed_at_ns = event.timestamp_ns
        elif isinstance(event, AlertRejected):
            pass
        else:
            raise TypeError(f"not an alert event: {type(event).__name__}")

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        return {"alerts": [self.alerts[k].to_dict() for k in sorted(self.alerts)]}

    def snapshot_json(self) -> str:
        """Canonical JSON of ``snapshot()`` (sorted keys, no spaces)."""
        return json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"))

    def state_hash(self) -> str:
        return hashlib.sha256(self.snapshot_json().encode()).hexdigest()

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Alerts:
        alerts = cls()
        for raw in data.get("alerts", ()):
            alert = Alert.from_dict(raw)
            alerts.alerts[alert.alert_id] = alert
            if alert.status is AlertStatus.ACTIVE:
                alerts._active[alert.account_id] = alerts._active.get(alert.account_id, 0) + 1
        return alerts


def _level_ticks(level: Decimal | None, tick: Decimal) -> int:
    if level is None:
        raise _Rejected(AlertRejectReason.INVALID_LEVEL, "a level is required")
    if not level.is_finite() or level <= 0:
        raise _Rejected(AlertRejectReason.INVALID_LEVEL, "the level must be a positive price")
    try:
        return to_units(level, tick)
    except ConversionError:
        raise _Rejected(
            AlertRejectReason.INVALID_LEVEL, f"the level is not a multiple of {tick}"
        ) from None


def _pct_bps(pct: Decimal | None) -> int:
    if pct is None:
        raise _Rejected(AlertRejectReason.INVALID_PCT, "pct is required")
    if not pct.is_finite() or not 0 < pct <= MAX_PCT:
        raise _Rejected(AlertRejectReason.INVALID_PCT, f"pct must be above 0 and at most {MAX_PCT}")
    try:
        return to_units(pct, PCT_UNIT)
    except ConversionError:
        raise _Rejected(AlertRejectReason.INVALID_PCT, "pct has at most 2 decimal places") from None
