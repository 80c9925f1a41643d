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
from gateway.jsontext import FastJSONResponse
from gateway.ports import StoredResponse
from gateway.schemas import CommandOutcome
from gateway.services import GatewayServices

ORDER_NAMESPACE = uuid.UUID("8f0d3f1e-3a55-4c1a-9f7e-2c3c0f4a9b11")
HEADER_PATTERN = r"^[\x21-\x7e]{1,128}$"  # visible ASCII, no spaces

_REJECTIONS = ("OrderRejected", "CommandRejected", "WithdrawalRejected", "AlertRejected")


_NAMESPACE_BYTES = ORDER_NAMESPACE.bytes


def order_id_for(account_id: str, client_order_id: str) -> str:
    """Deterministic: a retry of the same (account, client order id) is the same order.

    ``"o-" + uuid5(ORDER_NAMESPACE, account + "\x1f" + client order id).hex``, computed without
    building UUID objects (it is on every order's path)."""
    name = f"{account_id}\x1f{client_order_id}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return "o-" + digest.hex()


@dataclass(frozen=True, slots=True)
class CommandHeaders:
    idempotency_key: str | None
    correlation_id: str | None


async def command_headers(  # async: FastAPI runs a plain `def` dependency in a thread
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
    return CommandOutcome.model_validate(outcome_body(result, meta, order_id))


def outcome_body(result: CommandResult, meta: Meta, order_id: str | None) -> dict[str, Any]:
    """`outcome_of` as its JSON body, built directly: this is on every command's path, and
    going through the pydantic model and back cost more than deciding the order."""
    reason = None
    for event in result.events:
        if type(event).__name__ in _REJECTIONS:
            reason = str(getattr(event, "reason", "rejected"))
            break
    events = result.events
    positions: tuple[int, ...] | list[None] = result.positions or [None] * len(events)
    return {
        "command_id": meta.command_id,
        "correlation_id": meta.correlation_id,
        "outcome": "rejected" if reason is not None else "accepted",
        "reason": reason,
        "duplicate": result.duplicate,
        "order_id": order_id,
        "events": [
            {"position": p, "event": to_dict(e)} for p, e in zip(positions, events, strict=True)
        ],
    }


Fingerprint = str | Callable[[], str]
"""A request's fingerprint, or how to compute it: only requests with an Idempotency-Key
need one, so routes on the hot path pass a function."""


def fingerprint(method: str, path: str, body: Any) -> str:
    text = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def execute(
    services: GatewayServices,
    username: str,
    headers: CommandHeaders,
    request_fingerprint: Fingerprint,
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
        if not isinstance(request_fingerprint, str):
            request_fingerprint = request_fingerprint()
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
    body = outcome_body(result, meta, order_id)
    if key is not None:
        assert isinstance(request_fingerprint, str)
        stored = StoredResponse(200, body)
        await services.idempotency.complete(key, request_fingerprint, stored, ttl)
    return FastJSONResponse(body, headers={"X-Correlation-Id": meta.correlation_id})
