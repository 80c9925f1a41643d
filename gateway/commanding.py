"""Turning an HTTP request into one core command: ids, time, idempotency and the outcome.

The gateway supplies ``command_id`` (new), ``timestamp_ns`` (UTC now) and
``correlation_id`` (``X-Correlation-Id`` or the command id). With an ``Idempotency-Key``
header the first response is stored (Redis) and a retry of the same request gets it back;
for orders the order id is also derived from (account, client order id), so the core
itself returns the first outcome of a repeated order.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse

from commands.core import CommandResult
from domain.commands import Command
from domain.events import to_dict
from gateway.errors import ApiError
from gateway.ports import StoredResponse
from gateway.schemas import CommandOutcome, EventOut
from gateway.services import GatewayServices

ORDER_NAMESPACE = uuid.UUID("8f0d3f1e-3a55-4c1a-9f7e-2c3c0f4a9b11")
HEADER_PATTERN = r"^[\x21-\x7e]{1,128}$"  # visible ASCII, no spaces

_REJECTIONS = ("OrderRejected", "CommandRejected", "WithdrawalRejected")


def order_id_for(account_id: str, client_order_id: str) -> str:
    """Deterministic: a retry of the same (account, client order id) is the same order."""
    return "o-" + uuid.uuid5(ORDER_NAMESPACE, f"{account_id}\x1f{client_order_id}").hex


@dataclass(frozen=True, slots=True)
class CommandHeaders:
    idempotency_key: str | None
    correlation_id: str | None


def command_headers(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=HEADER_PATTERN,
            description="a retry with the same key and body returns the first response",
        ),
    ] = None,
    x_correlation_id: Annotated[
        str | None,
        Header(
            alias="X-Correlation-Id",
            pattern=HEADER_PATTERN,
            description="carried by the command and its events",
        ),
    ] = None,
) -> CommandHeaders:
    return CommandHeaders(idempotency_key, x_correlation_id)


@dataclass(frozen=True, slots=True)
class Meta:
    """What every command carries besides its own fields."""

    command_id: str
    correlation_id: str
    timestamp_ns: int


def outcome_of(result: CommandResult, meta: Meta, order_id: str | None) -> CommandOutcome:
    reason = None
    for event in result.events:
        if type(event).__name__ in _REJECTIONS:
            reason = str(getattr(event, "reason", "rejected"))
            break
    positions: list[int | None] = list(result.positions) or [None] * len(result.events)
    return CommandOutcome(
        command_id=meta.command_id,
        correlation_id=meta.correlation_id,
        outcome="rejected" if reason is not None else "accepted",
        reason=reason,
        duplicate=result.duplicate,
        order_id=order_id,
        events=[
            EventOut(position=p, event=to_dict(e))
            for p, e in zip(positions, result.events, strict=True)
        ],
    )


def fingerprint(method: str, path: str, body: Any) -> str:
    text = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def execute(
    services: GatewayServices,
    username: str,
    headers: CommandHeaders,
    request_fingerprint: str,
    build: Callable[[Meta], Command],
    *,
    order_id: str | None = None,
) -> JSONResponse:
    """Submit the command ``build`` makes and answer with its outcome (or the stored one)."""
    command_id = services.new_command_id()
    meta = Meta(command_id, headers.correlation_id or command_id, services.clock_ns())
    command = build(meta)
    key = None
    ttl = services.config.idempotency_ttl_s
    if headers.idempotency_key is not None:
        digest = hashlib.sha256(headers.idempotency_key.encode()).hexdigest()
        key = f"{username}:{digest}"
        begun = await services.idempotency.begin(key, request_fingerprint, ttl)
        if begun.state == "replay" and begun.stored is not None:
            return JSONResponse(
                begun.stored.body,
                status_code=begun.stored.status,
                headers={"Idempotent-Replayed": "true"},
            )
        if begun.state == "in_progress":
            raise ApiError(
                409, "request_in_progress", "the first request with this key is still running"
            )
        if begun.state == "mismatch":
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
                {"field": "Idempotency-Key", "reason": "idempotency_key_reused"},
            )
    try:
        result = await services.core.submit(command)
    except BaseException:
        if key is not None:
            await services.idempotency.abandon(key)
        raise
    body = outcome_of(result, meta, order_id).model_dump(mode="json")
    if key is not None:
        stored = StoredResponse(200, body)
        await services.idempotency.complete(key, request_fingerprint, stored, ttl)
    return JSONResponse(body, headers={"X-Correlation-Id": meta.correlation_id})
