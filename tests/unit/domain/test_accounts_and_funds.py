"""Accounts, deposits and withdrawals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.commands import DepositFunds
from domain.events import CommandRejected, FundsDeposited, WithdrawalRejected
from domain.exchange import Exchange
from domain.values import AccountId, Asset, Reason
from tests.unit.domain.factories import (
    ABC,
    ALICE,
    USD,
    buy,
    deposit,
    funded_exchange,
    kinds,
    list_instrument,
    open_account,
    withdraw,
)


def test_opening_an_account_records_account_opened() -> None:
    ex = Exchange()
    outcome = ex.handle(open_account("dave"))
    assert kinds(outcome) == ["AccountOpened"]
    assert AccountId("dave") in ex.accounts


def test_opening_an_existing_account_is_rejected_with_account_exists() -> None:
    ex = funded_exchange()
    before = ex.state_hash()
    (event,) = ex.handle(open_account(ALICE)).events
    assert isinstance(event, CommandRejected)
    assert event.reason is Reason.ACCOUNT_EXISTS
    assert ex.state_hash() == before


def test_deposit_is_credited_in_asset_atoms() -> None:
    ex = funded_exchange()
    (event,) = ex.handle(deposit(ALICE, USD, "12.34")).events
    assert isinstance(event, FundsDeposited)
    assert event.amount_atoms == 1234
    assert ex.balance(ALICE, USD) == (1_000_000 + 1234, 0)


@pytest.mark.parametrize(
    ("account", "asset", "amount", "reason"),
    [
        ("nobody", "USD", "1.00", Reason.UNKNOWN_ACCOUNT),
        (ALICE, "EUR", "1.00", Reason.UNKNOWN_ASSET),
        (ALICE, "USD", "0.001", Reason.INVALID_AMOUNT),
        (ALICE, "USD", "0", Reason.INVALID_AMOUNT),
        (ALICE, "USD", "-5.00", Reason.INVALID_AMOUNT),
    ],
)
def test_bad_deposit_is_rejected_and_changes_nothing(
    account: str, asset: str, amount: str, reason: Reason
) -> None:
    ex = funded_exchange()
    before = ex.state_hash()
    (event,) = ex.handle(deposit(account, asset, amount)).events
    assert isinstance(event, CommandRejected)
    assert event.reason is reason
    assert ex.state_hash() == before


def test_deposit_of_an_asset_is_possible_only_once_an_instrument_lists_it() -> None:
    ex = Exchange()
    ex.handle(open_account(ALICE))
    assert ex.handle(deposit(ALICE, USD, "1.00")).events[0].event_type == "CommandRejected"
    ex.handle(list_instrument())
    assert kinds(ex.handle(deposit(ALICE, USD, "1.00"))) == ["FundsDeposited"]


def test_withdrawal_debits_available_funds() -> None:
    ex = funded_exchange()
    assert kinds(ex.handle(withdraw(ALICE, ABC, "40.00"))) == ["FundsWithdrawn"]
    assert ex.balance(ALICE, ABC) == (6000, 0)


@pytest.mark.parametrize(
    ("account", "asset", "amount", "reason"),
    [
        (ALICE, "USD", "10000.01", Reason.INSUFFICIENT_FUNDS),
        ("nobody", "USD", "1.00", Reason.UNKNOWN_ACCOUNT),
        (ALICE, "EUR", "1.00", Reason.UNKNOWN_ASSET),
        (ALICE, "USD", "0.005", Reason.INVALID_AMOUNT),
        (ALICE, "USD", "0", Reason.INVALID_AMOUNT),
    ],
)
def test_bad_withdrawal_is_rejected_with_withdrawal_rejected(
    account: str, asset: str, amount: str, reason: Reason
) -> None:
    ex = funded_exchange()
    before = ex.state_hash()
    (event,) = ex.handle(withdraw(account, asset, amount)).events
    assert isinstance(event, WithdrawalRejected)
    assert event.reason is reason
    assert event.requested == Decimal(amount)
    assert ex.state_hash() == before


def test_reserved_funds_cannot_be_withdrawn() -> None:
    ex = funded_exchange()
    ex.handle(buy(ALICE, "100.00", "99"))  # reserves 99 * 100.20 = 9919.80 USD
    (event,) = ex.handle(withdraw(ALICE, USD, "100.21")).events
    assert isinstance(event, WithdrawalRejected)
    assert event.reason is Reason.INSUFFICIENT_FUNDS
    assert kinds(ex.handle(withdraw(ALICE, USD, "80.20"))) == ["FundsWithdrawn"]


def test_commands_refuse_float_amounts_at_construction() -> None:
    with pytest.raises(TypeError):
        DepositFunds(
            command_id="c",
            correlation_id="c",
            timestamp_ns=1,
            account_id=ALICE,
            asset=Asset("USD"),
            amount=1.5,  # type: ignore[arg-type]
        )
