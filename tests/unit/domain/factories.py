"""Test builders for domain commands and a ready-to-trade Exchange, with sensible defaults.

The default instrument ``ABC-USD``: tick 0.01 USD, lot 1 ABC, both assets with 2 decimals,
so one tick times one lot is exactly one USD atom (a cent) and 1 ABC is 100 ABC atoms.
Reference price 100.00, band 10 %, maker fee 10 bps, taker fee 20 bps.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, TypeVar

from domain.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    DepositFunds,
    HaltTrading,
    ListInstrument,
    OpenAccount,
    PlaceOrder,
    ResumeTrading,
    WithdrawFunds,
)
from domain.events import Event
from domain.exchange import Exchange, Outcome
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
)

E = TypeVar("E", bound=Event)

SYMBOL = Symbol("ABC-USD")
ABC = Asset("ABC")
USD = Asset("USD")
ALICE = AccountId("alice")
BOB = AccountId("bob")
CAROL = AccountId("carol")

_counter = itertools.count(1)


def next_id(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def meta(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    base: dict[str, Any] = {
        "command_id": f"cmd-{n}",
        "correlation_id": f"corr-{n}",
        "timestamp_ns": 1_700_000_000_000_000_000 + n,
    }
    base.update({k: v for k, v in overrides.items() if k in base})
    return base


def _split(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = {"command_id", "correlation_id", "timestamp_ns"}
    return (
        meta(**{k: v for k, v in overrides.items() if k in keys}),
        {k: v for k, v in overrides.items() if k not in keys},
    )


def list_instrument(**overrides: Any) -> ListInstrument:
    m, rest = _split(overrides)
    fields: dict[str, Any] = {
        "symbol": SYMBOL,
        "base": ABC,
        "quote": USD,
        "base_decimals": 2,
        "quote_decimals": 2,
        "tick_size": Decimal("0.01"),
        "lot_size": Decimal("1"),
        "min_qty": Decimal("1"),
        "max_qty": Decimal("1000"),
        "reference_price": Decimal("100.00"),
        "price_band_bps": 1000,
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
    }
    fields.update(rest)
    return ListInstrument(**m, **fields)


def halt(symbol: str = SYMBOL, **overrides: Any) -> HaltTrading:
    return HaltTrading(**meta(**overrides), symbol=Symbol(symbol))


def resume(symbol: str = SYMBOL, **overrides: Any) -> ResumeTrading:
    return ResumeTrading(**meta(**overrides), symbol=Symbol(symbol))


def open_account(account: str = ALICE, **overrides: Any) -> OpenAccount:
    return OpenAccount(**meta(**overrides), account_id=AccountId(account))


def deposit(
    account: str = ALICE, asset: str = USD, amount: str = "10000.00", **overrides: Any
) -> DepositFunds:
    return DepositFunds(
        **meta(**overrides),
        account_id=AccountId(account),
        asset=Asset(asset),
        amount=Decimal(amount),
    )


def withdraw(
    account: str = ALICE, asset: str = USD, amount: str = "1.00", **overrides: Any
) -> WithdrawFunds:
    return WithdrawFunds(
        **meta(**overrides),
        account_id=AccountId(account),
        asset=Asset(asset),
        amount=Decimal(amount),
    )


def limit(
    account: str = ALICE,
    side: Side = Side.BUY,
    price: str | None = "100.00",
    qty: str | None = "1",
    **overrides: Any,
) -> PlaceOrder:
    m, rest = _split(overrides)
    fields: dict[str, Any] = {
        "account_id": AccountId(account),
        "symbol": SYMBOL,
        "side": side,
        "order_type": OrderType.LIMIT,
        "order_id": OrderId(next_id("o")),
        "client_order_id": ClientOrderId(next_id("c")),
        "price": None if price is None else Decimal(price),
        "quantity": None if qty is None else Decimal(qty),
        "time_in_force": TimeInForce.GTC,
        "post_only": False,
        "stp": SelfTradePrevention.CANCEL_TAKER,
    }
    fields.update(rest)
    return PlaceOrder(**m, **fields)


def buy(
    account: str = ALICE, price: str | None = "100.00", qty: str | None = "1", **kw: Any
) -> PlaceOrder:
    return limit(account, Side.BUY, price, qty, **kw)


def sell(
    account: str = BOB, price: str | None = "100.00", qty: str | None = "1", **kw: Any
) -> PlaceOrder:
    return limit(account, Side.SELL, price, qty, **kw)


def market(
    account: str = ALICE,
    side: Side = Side.BUY,
    qty: str | None = "1",
    budget: str | None = None,
    **overrides: Any,
) -> PlaceOrder:
    m, rest = _split(overrides)
    fields: dict[str, Any] = {
        "account_id": AccountId(account),
        "symbol": SYMBOL,
        "side": side,
        "order_type": OrderType.MARKET,
        "order_id": OrderId(next_id("o")),
        "client_order_id": ClientOrderId(next_id("c")),
        "price": None,
        "quantity": None if qty is None else Decimal(qty),
        "quote_budget": None if budget is None else Decimal(budget),
        "time_in_force": TimeInForce.IOC,
        "stp": SelfTradePrevention.CANCEL_TAKER,
    }
    fields.update(rest)
    return PlaceOrder(**m, **fields)


def cancel(account: str, order_id: str, **overrides: Any) -> CancelOrder:
    return CancelOrder(
        **meta(**overrides), account_id=AccountId(account), order_id=OrderId(order_id)
    )


def amend(
    account: str,
    order_id: str,
    price: str | None = None,
    qty: str | None = None,
    **overrides: Any,
) -> AmendOrder:
    return AmendOrder(
        **meta(**overrides),
        account_id=AccountId(account),
        order_id=OrderId(order_id),
        new_price=None if price is None else Decimal(price),
        new_quantity=None if qty is None else Decimal(qty),
    )


def cancel_all(account: str, symbol: str | None = None, **overrides: Any) -> CancelAllOrders:
    return CancelAllOrders(
        **meta(**overrides),
        account_id=AccountId(account),
        symbol=None if symbol is None else Symbol(symbol),
    )


def funded_exchange(
    accounts: tuple[str, ...] = (ALICE, BOB, CAROL),
    usd: str = "10000.00",
    abc: str = "100.00",
) -> Exchange:
    """An Exchange with ABC-USD listed and every account opened and funded."""
    ex = Exchange()
    ex.handle(list_instrument())
    for account in accounts:
        ex.handle(open_account(account))
        ex.handle(deposit(account, USD, usd))
        ex.handle(deposit(account, ABC, abc))
    return ex


def kinds(outcome: Outcome | list[Event] | tuple[Event, ...]) -> list[str]:
    """Event types of an outcome, in order."""
    events = outcome.events if isinstance(outcome, Outcome) else outcome
    return [e.event_type for e in events]


def only(outcome: Outcome, cls: type[E]) -> list[E]:
    return [e for e in outcome.events if isinstance(e, cls)]
