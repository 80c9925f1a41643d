"""The `/graphql` router: HTTP queries and mutations, graphql-transport-ws subscriptions.

Authentication is the REST API's: ``Authorization: Bearer <access token>`` on HTTP (and on
the websocket upgrade, if the client can set it), or ``{"Authorization": "Bearer …"}`` (or
``{"token": "…"}``) as the ``connection_init`` payload; a refused token closes the socket
with 4403 before any subscription starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import Request, WebSocket
from redis.asyncio import Redis
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from read_api.bridge import AsgiApp, RestBridge
from read_api.context import ReadContext
from read_api.live import LiveFeed
from read_api.live_redis import RedisLiveFeed
from read_api.schema import build_schema
from read_api.viewer import GatewayPort


@dataclass(frozen=True, slots=True)
class ReadApiSetup:
    """What bootstrap knows and the GraphQL API needs."""

    dsn: str  # the read models' database (also holds the event log)
    redis_url: str | None = None  # without `live`: a plain `RedisLiveFeed` on this Redis
    live: LiveFeed | None = None  # the gateway's live feed (owned and started by bootstrap)
    production: bool = False  # introspection off, no GraphiQL page
    pool_size: int = 4


class _Resources:
    """Opened by the router's lifespan (inside the server's event loop), never at import."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.redis: Redis | None = None
        self.live: LiveFeed | None = None


class ReadApiRouter(GraphQLRouter[ReadContext, None]):
    async def on_ws_connect(self, context: ReadContext) -> UnsetType | dict[str, object] | None:
        params = context.connection_params
        authorization: str | None = None
        if isinstance(params, dict):
            raw = params.get("Authorization") or params.get("authorization")
            token = params.get("token")
            if isinstance(raw, str):
                authorization = raw
            elif isinstance(token, str):
                authorization = f"Bearer {token}"
        if authorization is not None:
            await context.authenticate(authorization)
        if context.viewer is None:
            raise ConnectionRejectionError()
        return {"username": context.viewer.username}


def graphql_router(
    setup: ReadApiSetup, gateway: GatewayPort | None = None, *, app: AsgiApp | None = None
) -> ReadApiRouter:
    """The router; ``gateway`` answers tokens and runs commands, by default through the
    REST ``app`` in process (`read_api.bridge.RestBridge`)."""
    if gateway is None:
        if app is None:
            raise ValueError("give the gateway port or the REST app")
        gateway = RestBridge(app)
    port = gateway
    resources = _Resources()

    async def context(request: Request = None, websocket: WebSocket = None) -> ReadContext:  # type: ignore[assignment]
        pool = resources.pool
        if pool is None:
            raise RuntimeError("the GraphQL router's lifespan did not run")
        ctx = ReadContext(pool, port, resources.live)
        connection = request if request is not None else websocket
        await ctx.authenticate(connection.headers.get("authorization"))
        return ctx

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        resources.pool = await asyncpg.create_pool(setup.dsn, min_size=1, max_size=setup.pool_size)
        if setup.live is not None:
            resources.live = setup.live
        elif setup.redis_url is not None:
            resources.redis = Redis.from_url(setup.redis_url)
            resources.live = RedisLiveFeed(resources.redis)
        try:
            yield
        finally:
            if isinstance(port, RestBridge):
                await port.close()
            if resources.redis is not None:
                await resources.redis.aclose()
            await resources.pool.close()

    router = ReadApiRouter(
        build_schema(production=setup.production),
        context_getter=context,
        graphql_ide=None if setup.production else "graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=20,
    )
    router.lifespan_context = lifespan
    return router
