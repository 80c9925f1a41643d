"""The gateway port over the gateway's own REST app, in process (no socket).

A token is checked by ``GET /auth/me`` and a mutation is the REST command request, both
sent through `httpx.ASGITransport` to the same FastAPI app: one code path for
authentication (signature, expiry, revocation, rate limit) and for commands (validation,
ids, time, idempotency, the core's answer), so GraphQL cannot drift from REST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import jwt

from read_api.errors import ReadApiError
from read_api.viewer import CommandReply, Viewer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BASE_URL = "http://gateway.internal"


def error_of(response: httpx.Response) -> ReadApiError:
    try:
        error = response.json()["error"]
        return ReadApiError(
            str(error["code"]),
            str(error["message"]),
            status=response.status_code,
            details=error.get("details") or None,
        )
    except (ValueError, KeyError, TypeError):
        return ReadApiError("gateway_error", response.text[:200], status=response.status_code)


class RestBridge:
    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL, timeout=30
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def authenticate(self, authorization: str) -> Viewer:
        response = await self.client.get("/auth/me", headers={"Authorization": authorization})
        if response.status_code != 200:
            raise error_of(response)
        me = response.json()
        _, _, token = authorization.partition(" ")
        # Already verified by /auth/me; read only its expiry.
        exp = jwt.decode(token.strip(), options={"verify_signature": False}).get("exp")
        return Viewer(
            username=str(me["username"]),
            role=str(me["role"]),
            accounts=frozenset(str(a) for a in me["accounts"]),
            authorization=authorization,
            expires_at=int(exp) if isinstance(exp, int) else None,
        )

    async def command(
        self,
        viewer: Viewer,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> CommandReply:
        response = await self.client.request(
            method,
            path,
            json=body,
            headers={"Authorization": viewer.authorization, **headers},
        )
        if response.status_code != 200:
            raise error_of(response)
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return CommandReply(response.status_code, response.json(), replayed)
