"""Accounts: opening them, deposits and withdrawals (admin), balances (owner, auditor, admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from domain.commands import DepositFunds, OpenAccount, WithdrawFunds
from domain.values import AccountId, Asset, from_atoms
from gateway.commanding import CommandHeaders, Meta, command_headers, execute, fingerprint
from gateway.deps import CurrentPrincipal, Services
from gateway.errors import ApiError, documented
from gateway.ports import Role
from gateway.schemas import ID_PATTERN, AccountCreate, BalanceOut, CommandOutcome, FundsMove

router = APIRouter(prefix="/accounts", tags=["accounts"])

AccountPath = Annotated[str, Path(pattern=ID_PATTERN)]
Headers = Annotated[CommandHeaders, Depends(command_headers)]
WRITE_ERRORS = documented(400, 401, 403, 409, 413, 422, 429, 503)


@router.post("", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Open an account")
async def open_account(
    body: AccountCreate, services: Services, principal: CurrentPrincipal, headers: Headers
) -> JSONResponse:
    """Admin only. Who owns the account is set with `tradecore users`."""
    principal.require_role(Role.ADMIN)

    def build(meta: Meta) -> OpenAccount:
        return OpenAccount(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(body.account_id),
        )

    print_ = fingerprint("POST", "/accounts", body.model_dump(mode="json"))
    return await execute(services, principal.username, headers, print_, build)


async def _move_funds(
    kind: type[DepositFunds] | type[WithdrawFunds],
    account_id: str,
    body: FundsMove,
    services: Services,
    principal: CurrentPrincipal,
    headers: CommandHeaders,
) -> JSONResponse:
    principal.require_role(Role.ADMIN)

    def build(meta: Meta) -> DepositFunds | WithdrawFunds:
        return kind(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            asset=Asset(body.asset),
            amount=body.amount,
        )

    path = f"/accounts/{account_id}/{kind.__name__}"
    print_ = fingerprint("POST", path, body.model_dump(mode="json"))
    return await execute(services, principal.username, headers, print_, build)


@router.post(
    "/{account_id}/deposits",
    response_model=CommandOutcome,
    responses=WRITE_ERRORS,
    summary="Book a deposit",
)
async def deposit(
    account_id: AccountPath,
    body: FundsMove,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """Admin only."""
    return await _move_funds(DepositFunds, account_id, body, services, principal, headers)


@router.post(
    "/{account_id}/withdrawals",
    response_model=CommandOutcome,
    responses=WRITE_ERRORS,
    summary="Book a withdrawal",
)
async def withdraw(
    account_id: AccountPath,
    body: FundsMove,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """Admin only. Refused by the core (``WithdrawalRejected``) beyond the available funds."""
    return await _move_funds(WithdrawFunds, account_id, body, services, principal, headers)


@router.get(
    "/{account_id}/balances",
    response_model=list[BalanceOut],
    responses=documented(401, 403, 404, 422, 429),
    summary="Balances",
)
async def balances(
    account_id: AccountPath, services: Services, principal: CurrentPrincipal
) -> list[BalanceOut]:
    """Available and reserved funds per asset, from the core's memory (moves to the read
    models)."""
    principal.require_read(account_id)
    exchange = services.core.exchange
    account = exchange.accounts.get(AccountId(account_id))
    if account is None:
        raise ApiError(404, "unknown_account", f"no account {account_id!r}")
    asset_decimals = exchange.asset_decimals  # once: with the Rust kernel each view is a copy
    out = []
    for asset in sorted(account.balances):
        available, reserved = exchange.balance(AccountId(account_id), asset)
        decimals = asset_decimals.get(asset, 0)
        out.append(
            BalanceOut(
                asset=asset,
                available=str(from_atoms(available, decimals)),
                reserved=str(from_atoms(reserved, decimals)),
                available_atoms=available,
                reserved_atoms=reserved,
            )
        )
    return out
