"""The order-entry lane: `POST /accounts/{id}/orders` answered without FastAPI's machinery.

Placing orders is the one request a trading gateway must serve by the thousand per second, and
FastAPI's routing, dependency solving and middleware layers cost more CPU per order than the
core deciding it. This ASGI middleware stands in front of FastAPI (`gateway.app.GatewayApp`),
behind gateway.body.BodyGuard (so bodies are already size-capped and free of binary floats),
and answers a well-formed order itself, with the route's own
parts: the same token check (`TokenIssuer.decode_access`), revocation check and rate limit
(`gateway.deps.admit`), body model (`OrderCreate`), command (`submit_order`) and error bodies
(`gateway.errors.service_error`), so the answer is the one FastAPI would give.

Anything else goes to FastAPI untouched, the body replayed: another path or method, a missing
or invalid token, a body the model refuses, an `Idempotency-Key`, a header not as expected.
Those checks have no side effects, so FastAPI then decides (and words any error) as if the lane
were not there. Only after they pass does the lane do what counts: the revocation check, the
rate-limit hit and the command.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.body import PARSED_BODY
from gateway.commanding import HEADER_PATTERN, CommandHeaders
from gateway.deps import admit
from gateway.errors import ApiError, service_error
from gateway.ports import Role, User
from gateway.routes.orders import submit_order
from gateway.schemas import ID_PATTERN, OrderCreate
from gateway.services import GatewayServices

_PATH = re.compile(r"^/accounts/([^/]+)/orders$")
_ID = re.compile(ID_PATTERN)
_HEADER = re.compile(HEADER_PATTERN)
_WANTED = (b"authorization", b"content-type", b"idempotency-key", b"x-correlation-id")


class OrderEntryLane:
    def __init__(self, app: ASGIApp, services: GatewayServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in found:  # the first one, as Starlette reads
                found[name] = value
        authorization = found.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        correlation = found.get(b"x-correlation-id")
        if (
            b"idempotency-key" in found
            or found.get(b"content-type") != b"application/json"
            or scheme.lower() != "bearer"
            or not token
            or (correlation is not None and not _HEADER.match(correlation.decode("latin-1")))
            or not _ID.match(match.group(1))
        ):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        account_id = match.group(1)
        services = self.services
        try:
            parsed = scope[PARSED_BODY] if PARSED_BODY in scope else json.loads(body)
            order = OrderCreate.model_validate(parsed)
            claims = services.tokens.decode_access(token)
        except (ValueError, RecursionError, ValidationError, ApiError):  # FastAPI words it
            claims = None
        if claims is None or not _may_trade(claims.user, account_id):
            await self.app(scope, _replay(body, receive), send)
            return

        headers = CommandHeaders(None, None if correlation is None else correlation.decode())
        try:
            principal = await admit(services, claims)
            response = await submit_order(services, principal, account_id, order, headers)
        except Exception as exc:
            refusal = service_error(exc)
            if refusal is None:
                raise
            response = refusal
        await response(scope, receive, send)


def _may_trade(user: User, account_id: str) -> bool:
    """`Principal.require_trade` without raising: its refusals are FastAPI's to word."""
    return user.role is Role.TRADER and account_id in user.accounts


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
