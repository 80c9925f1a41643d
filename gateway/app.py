"""The FastAPI application: built by `create_app` from its dependencies, never at import time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.body import DEFAULT_MAX_BODY, BodyGuard
from gateway.errors import install_error_handlers
from gateway.health import ComponentHealth, HealthProbe, HealthReport
from gateway.lane import OrderEntryLane
from gateway.routes import accounts, alerts, auth, events, instruments, orders
from gateway.services import GatewayServices
from gateway.ws import server as ws
from read_api.router import ReadApiSetup, graphql_router

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = """Commands and reads of the Tradecore trading core.

Sign in at `POST /auth/token` (OAuth2 password or client credentials) and send
`Authorization: Bearer <access_token>`. Every error is `{"error": {"code", "message",
"details"}}`. Decimals are strings. See docs/api.md."""


class GatewayApp(FastAPI):
    """FastAPI with front doors: every HTTP request meets `front` (the body guard, then the
    order-entry lane) and every WebSocket connection `sockets` (the `/ws` lane) before
    FastAPI's own stack. An order the lane answers, or a `/ws` connection, never enters the
    framework's layers (error and telemetry middleware, routing, dependency solving), which
    cost more CPU per order than the lane itself and would stay on a connection's stack for
    its whole life; everything else goes on to FastAPI."""

    front: ASGIApp | None = None
    sockets: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self.sockets if scope["type"] == "websocket" else self.front
        if door is None:
            await super().__call__(scope, receive, send)
        else:
            await door(scope, receive, send)


class _Framework:
    """FastAPI itself, behind the front door."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(self.app, scope, receive, send)


def create_app(
    health: HealthProbe,
    version: str,
    *,
    lifespan: Lifespan | None = None,
    services: GatewayServices | None = None,
    graphql: ReadApiSetup | None = None,
    live: ws.LiveHub | None = None,
) -> FastAPI:
    """The gateway. ``lifespan`` starts and stops what runs beside it (the core, the demo);
    ``services`` (the core, users, Redis-backed stores) adds the REST API to /health, and
    ``graphql`` (with ``services``) the GraphQL API at /graphql."""
    app = GatewayApp(title="Tradecore", version=version, lifespan=lifespan, description=DESCRIPTION)
    install_error_handlers(app)
    max_body = DEFAULT_MAX_BODY if services is None else services.config.max_body
    framework: ASGIApp = _Framework(app)
    if services is not None:  # behind BodyGuard: bodies reach it checked (gateway/lane.py)
        framework = OrderEntryLane(framework, services=services)
    app.front = BodyGuard(framework, max_body=max_body)

    @app.get("/health", response_model=HealthReport, tags=["operations"])
    async def get_health(response: Response) -> HealthReport:
        """Each service and component with its state; 503 when any is not up."""
        components = [
            ComponentHealth(name="gateway", kind="component", state="up", version=version),
            *await health.check(),
        ]
        ok = all(c.state == "up" for c in components)
        response.status_code = 200 if ok else 503
        return HealthReport(status="ok" if ok else "degraded", components=components)

    if services is not None:
        app.state.services = services
        for module in (auth, orders, alerts, accounts, instruments, events):
            app.include_router(module.router)
        if graphql is not None:  # GraphQL's tokens and commands go through the routes above
            router = graphql_router(graphql, app=app)
            app.include_router(router, prefix="/graphql", include_in_schema=False)
    if live is not None:  # WebSocket channels at /ws (docs/websocket.md)
        app.state.live = live
        app.include_router(ws.router)  # reached only under a root path: the lane serves /ws
        app.sockets = ws.LiveLane(_Framework(app), live)
    return app
