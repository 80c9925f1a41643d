"""A trader's price alerts on one of its accounts: create, cancel, list."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from domain.alerts import MAX_WINDOW_S, Alert, Alerts
from domain.commands import CancelAlert, CreateAlert
from domain.events import AlertCondition, AlertId
from domain.values import AccountId, Symbol
from gateway.commanding import CommandHeaders, Meta, command_headers, execute, fingerprint
from gateway.deps import CurrentPrincipal, Services
from gateway.errors import ApiError, documented
from gateway.schemas import ID_PATTERN, CommandOutcome, DecimalIn, Id, SymbolStr

router = APIRouter(prefix="/accounts/{account_id}/alerts", tags=["alerts"])

ALERT_NAMESPACE = uuid.UUID("3c1f8b52-6a0e-4d6b-8d2e-9b7a41c5e0f3")
AccountPath = Annotated[str, Path(pattern=ID_PATTERN)]
AlertPath = Annotated[str, Path(pattern=ID_PATTERN)]
Headers = Annotated[CommandHeaders, Depends(command_headers)]
WRITE_ERRORS = documented(400, 401, 403, 409, 413, 422, 429, 503)


def alert_id_for(account_id: str, client_alert_id: str) -> str:
    """Deterministic per (account, client alert id): one account cannot take another's ids."""
    return "al-" + uuid.uuid5(ALERT_NAMESPACE, f"{account_id}\x1f{client_alert_id}").hex


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: SymbolStr
    condition: Literal["crosses_above", "crosses_below", "moves_pct"]
    level: DecimalIn | None = Field(None, description="crosses_above/crosses_below: the price")
    pct: DecimalIn | None = Field(None, description="moves_pct: the move in percent, e.g. 2.5")
    window_s: Annotated[StrictInt, Field(ge=1, le=MAX_WINDOW_S)] | None = Field(
        None, description="moves_pct: the window in seconds"
    )
    client_alert_id: Id | None = Field(
        None,
        description="your id for this alert (the alert id is derived from it); defaults to "
        "the Idempotency-Key header, else a new id. A second alert with the same one is "
        "rejected (duplicate_alert_id).",
    )


class AlertOut(BaseModel):
    alert_id: str
    account_id: str
    symbol: str
    condition: str
    level: str | None = Field(description="crossings: the price level")
    pct: str | None = Field(description="moves_pct: the move in percent")
    window_s: int | None = Field(description="moves_pct: the window in seconds")
    status: Literal["active", "triggered", "canceled"]
    created_at_ns: int
    closed_at_ns: int | None = Field(description="when it triggered or was canceled")


@router.post("", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Create an alert")
async def create_alert(
    account_id: AccountPath,
    body: AlertCreate,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """Accepted (``AlertCreated``, its ``alert_id`` in the event) or rejected with the reason
    (``AlertRejected``). It fires once, as ``AlertTriggered`` on the alerts channel."""
    principal.require_trade(account_id)
    client_alert_id = body.client_alert_id or headers.idempotency_key or uuid.uuid4().hex
    alert_id = alert_id_for(account_id, client_alert_id)

    def build(meta: Meta) -> CreateAlert:
        return CreateAlert(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            alert_id=AlertId(alert_id),
            symbol=Symbol(body.symbol),
            condition=AlertCondition(body.condition),
            level=body.level,
            pct=body.pct,
            window_s=body.window_s,
        )

    print_ = fingerprint("POST", f"/accounts/{account_id}/alerts", body.model_dump(mode="json"))
    return await execute(services, principal.username, headers, print_, build)


@router.delete(
    "/{alert_id}", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Cancel an alert"
)
async def cancel_alert(
    account_id: AccountPath,
    alert_id: AlertPath,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """Rejected (``not_alert_owner``) when the alert is not this account's."""
    principal.require_trade(account_id)

    def build(meta: Meta) -> CancelAlert:
        return CancelAlert(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            alert_id=AlertId(alert_id),
        )

    print_ = fingerprint("DELETE", f"/accounts/{account_id}/alerts/{alert_id}", None)
    return await execute(services, principal.username, headers, print_, build)


@router.get(
    "",
    response_model=list[AlertOut],
    responses=documented(401, 403, 422, 429, 503),
    summary="The account's alerts",
)
async def list_alerts(
    account_id: AccountPath,
    services: Services,
    principal: CurrentPrincipal,
    status: Annotated[Literal["active", "triggered", "canceled"] | None, Query()] = None,
) -> list[AlertOut]:
    """Oldest first, from the core's memory (GraphQL ``alerts`` reads the read model)."""
    principal.require_read(account_id)
    alerts = getattr(services.core, "alerts", None)
    if not isinstance(alerts, Alerts):
        raise ApiError(503, "alerts_unavailable", "this core does not decide alerts")
    mine = [a for a in alerts.of_account(account_id) if status is None or a.status == status]
    if not mine:
        return []
    instruments = services.core.exchange.instruments  # once: a copy with the Rust kernel
    return [_out(a, instruments.get(Symbol(a.symbol))) for a in mine]


def _out(alert: Alert, instrument: object) -> AlertOut:
    crossing = alert.condition is not AlertCondition.MOVES_PCT
    tick = getattr(instrument, "tick_size", None)
    level = None
    if crossing:
        level = str(alert.level_ticks) if tick is None else str(tick * alert.level_ticks)
    return AlertOut(
        alert_id=alert.alert_id,
        account_id=alert.account_id,
        symbol=alert.symbol,
        condition=alert.condition.value,
        level=level,
        pct=None if crossing else str(Decimal(alert.pct_bps).scaleb(-2)),
        window_s=None if crossing else alert.window_s,
        status=alert.status.value,
        created_at_ns=alert.created_at_ns,
        closed_at_ns=alert.closed_at_ns or None,
    )
