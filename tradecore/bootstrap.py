"""Wiring: builds every component from the settings and runs the system (nothing at import)."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any, cast

import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis

from commands.core import Core
from domain.commands import DepositFunds, OpenAccount
from domain.values import AccountId, Asset
from gateway.app import create_app
from gateway.health import ComponentHealth
from gateway.ports import CoreApi, EventLog, IdempotencyStore, RateLimiter, Role, UserDirectory
from gateway.services import GatewayConfig, GatewayServices
from gateway.tokens import TokenConfig, TokenIssuer
from gateway.web import WEB_DIST, mount_web
from gateway.ws.server import LiveHub, WsConfig
from infra.admission import RedisAdmission
from infra.auth_store import RedisIdempotencyStore, RedisTokenRevocations
from infra.fanout import LiveHealth, LivePublisher, RedisLiveFeed
from infra.health import ServiceHealth
from infra.migrations import upgrade
from infra.publisher_process import ProcessPublisher
from infra.ratelimit import RedisRateLimiter
from infra.settings import Settings
from infra.stack import Stack, StackError
from infra.stack.base import port_in_use
from infra.users import PostgresUserDirectory
from projections.runner import SERVING_GC_THRESHOLD, fewer_collections
from read_api.router import ReadApiSetup
from tradecore import __version__
from tradecore.market import AlertService, CoreService, DemoMarket, MarketOptions
from tradecore.readside import ReadSide, log_database

Report = Callable[[str], None]


class SystemHealth:
    """The services' health plus the core's and, when it runs, the demo market's."""

    def __init__(self, services: ServiceHealth, core: CoreService) -> None:
        self.services = services
        self.core = core
        self.core_error = ""
        self.market: DemoMarket | None = None
        self.alerts: AlertService | None = None
        self.read_side: ReadSide | None = None

    async def check(self) -> list[ComponentHealth]:
        components = await self.services.check()
        if self.core_error:
            components.append(
                ComponentHealth(name="core", kind="component", state="down", detail=self.core_error)
            )
        else:
            components.append(self.core.health())
        if self.market is not None:
            components.append(self.market.health())
        if self.alerts is not None:
            components.append(self.alerts.health())
        if self.read_side is not None:
            components += self.read_side.health()
        return components


# The demo's users (development and test only): (name, role, accounts, password).
DEMO_USERS: tuple[tuple[str, Role, tuple[str, ...], str], ...] = (
    ("alice", Role.TRADER, ("alice-1",), "alice-demo"),
    ("bob", Role.TRADER, ("bob-1",), "bob-demo"),
    ("auditor", Role.AUDITOR, (), "auditor-demo"),
    ("admin", Role.ADMIN, (), "admin-demo"),
)
DEMO_QUOTE_DEPOSIT = Decimal("1000000")
DEMO_BASE_DEPOSIT = Decimal("100")


async def seed_demo_users(
    core: Core, users: PostgresUserDirectory, clock_ns: Callable[[], int]
) -> list[str]:
    """The demo users, and their accounts opened and funded through the core (once)."""
    added = []
    for name, role, accounts, password in DEMO_USERS:
        if await users.get(name) is None:
            await users.add(name, role, list(accounts), password)
            added.append(name)
        for account in accounts:
            if AccountId(account) in core.exchange.accounts:
                continue
            meta = {"timestamp_ns": clock_ns()}
            command_id = f"demo-{uuid.uuid4().hex}"
            await core.submit(
                OpenAccount(
                    command_id=command_id,
                    correlation_id=command_id,
                    account_id=AccountId(account),
                    **meta,
                )
            )
            assets = {i.quote: DEMO_QUOTE_DEPOSIT for i in core.exchange.instruments.values()}
            assets.update({i.base: DEMO_BASE_DEPOSIT for i in core.exchange.instruments.values()})
            for asset, amount in sorted(assets.items()):
                command_id = f"demo-{uuid.uuid4().hex}"
                await core.submit(
                    DepositFunds(
                        command_id=command_id,
                        correlation_id=command_id,
                        account_id=AccountId(account),
                        asset=Asset(asset),
                        amount=amount,
                        **meta,
                    )
                )
    return added


def redis_prefix_for(dsn: str) -> str:
    """Redis keys and live channels per event log, as Kafka topics are (``log_topic``): two
    Tradecores on one Redis with different databases never see each other's market data,
    revocations or rate limits. The default database keeps the plain ``tradecore:``."""
    database = log_database(dsn)
    return "tradecore:" if database is None else f"tradecore:{database}:"


REDIS_POOL_SIZE = 64  # per client; callers beyond it wait up to REDIS_POOL_WAIT_S
REDIS_POOL_WAIT_S = 5.0


def bounded_redis(url: str) -> Redis:
    """A Redis client whose pool waits for a free connection instead of opening one per
    concurrent caller: a storm of requests must not reach Redis's `maxclients` (or the
    process's open-files limit, shared with 10,000 sockets) and fail somebody's call."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT_S
    )
    return Redis(connection_pool=pool)


def build_gateway(
    settings: Settings,
    report: Report = lambda _: None,
    *,
    dsn: str | None = None,
    redis_prefix: str | None = None,
    config: GatewayConfig | None = None,
    hasher: PasswordHasher | None = None,
) -> FastAPI:
    """The gateway with the live core beside it and, with ``settings.demo_market``, the demo.

    ``dsn`` (default: the settings' database), ``redis_prefix`` (default: one per event log,
    ``redis_prefix_for``), ``config`` and ``hasher`` let tests run a whole gateway on their
    own database and Redis keys."""
    dsn = dsn or settings.dsn
    redis_prefix = redis_prefix or redis_prefix_for(dsn)
    live_redis = bounded_redis(settings.redis_dsn)  # live fan-out (docs/websocket.md)
    publisher: LivePublisher | ProcessPublisher
    if settings.live_publisher == "process":  # off the order-entry loop (infra.publisher_process)
        publisher = ProcessPublisher(
            settings.redis_dsn, redis_prefix, at_rest=lambda fn: core.core.call_at_rest(fn)
        )
    else:
        publisher = LivePublisher(live_redis, redis_prefix)
    core = CoreService(dsn, snapshot_every=settings.snapshot_every, on_commit=publisher.on_commit)
    health = SystemHealth(ServiceHealth(settings), core)
    users = PostgresUserDirectory(dsn, hasher=hasher)
    redis = bounded_redis(settings.redis_dsn)
    services = GatewayServices(
        core=core.core,
        users=users,
        revocations=RedisTokenRevocations(redis, redis_prefix),
        limiter=RedisRateLimiter(redis, redis_prefix),
        admission=RedisAdmission(redis, redis_prefix),
        idempotency=RedisIdempotencyStore(redis, redis_prefix),
        events=core.store,
        tokens=TokenIssuer(TokenConfig(secret=settings.secret_key.get_secret_value())),
        config=config or GatewayConfig(),
    )
    feed = RedisLiveFeed(live_redis, redis_prefix)
    hub = LiveHub(feed, services)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await users.open()
        except Exception as exc:
            report(f"warning: the user directory did not open ({exc}); nobody can log in")
        try:
            await core.start()
        except Exception as exc:
            health.core_error = f"the core did not start: {exc}"
            report(f"warning: {health.core_error}; serving without it")
        if core.started:  # seeded from the recovered core before any command is decided
            try:
                await publisher.start(core.core.exchange, core.core.alerts.alerts.values())
            except Exception as exc:
                report(f"warning: live market data is not published: {exc}")
            alerts = AlertService(dsn, core.core, report)
            try:
                await alerts.start()
                health.alerts = alerts
            except Exception as exc:
                report(f"warning: alerts are not evaluated: {exc}")
        await feed.start()
        read_side = None
        if settings.read_side:
            read_side = ReadSide(settings, report, dsn=dsn)
            try:
                await read_side.start()
                health.read_side = read_side
            except Exception as exc:
                report(f"warning: the read models are not being built: {exc}")
        market = None
        if core.started and settings.demo_market:
            options = MarketOptions(
                seed=settings.demo_seed,
                rate=settings.demo_rate,
                symbols=[s.strip() for s in settings.demo_symbols.split(",") if s.strip()],
                snapshot_every=settings.snapshot_every,
                progress_every=30.0,
            )
            market = DemoMarket(core.core, options, report)
            await market.start()
            health.market = market
            await _seed_demo(settings, core.core, users, report)
        try:
            with fewer_collections(SERVING_GC_THRESHOLD):
                yield
        finally:
            if market is not None:
                await market.stop()
                report("demo market stopped")
            if health.read_side is not None:
                await health.read_side.stop()
            if health.alerts is not None:
                await health.alerts.stop()
            await hub.close_all()
            await core.stop()
            await publisher.stop()
            await feed.stop()
            await live_redis.aclose()
            await users.close()
            await redis.aclose()

    graphql = ReadApiSetup(dsn, live=feed, production=settings.env == "production")
    app = create_app(
        health=LiveHealth(health, publisher, feed),
        version=__version__,
        lifespan=lifespan,
        services=services,
        graphql=graphql,
        live=hub,
    )
    app.state.publisher = publisher
    mount_web(app, WEB_DIST)  # last: it adds the catch-all route of the single-page app
    return app


class _NotHere:
    """A port a market-data process does not have; reaching for it is a wiring error."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a market-data process has no {self._what} (asked for {name!r})")


def build_market_data(
    settings: Settings,
    report: Report = lambda _: None,
    *,
    dsn: str | None = None,
    redis_prefix: str | None = None,
    config: GatewayConfig | None = None,
) -> FastAPI:
    """A market-data process: `/ws` live channels (and `/health`) from the Redis fan-out,
    without a core. Several of them, beside the gateway, carry subscribers on more cores
    (`tradecore market-data --procs N`); a command sent to one is refused with a reason.
    Tokens are checked as by the gateway (signature, expiry, revocation in Redis)."""
    dsn = dsn or settings.dsn
    redis_prefix = redis_prefix or redis_prefix_for(dsn)
    live_redis = bounded_redis(settings.redis_dsn)
    feed = RedisLiveFeed(live_redis, redis_prefix)
    redis = bounded_redis(settings.redis_dsn)
    services = GatewayServices(
        core=cast(CoreApi, _NotHere("core")),
        users=cast(UserDirectory, _NotHere("user directory")),
        revocations=RedisTokenRevocations(redis, redis_prefix),
        limiter=cast(RateLimiter, _NotHere("rate limiter")),
        idempotency=cast(IdempotencyStore, _NotHere("idempotency store")),
        events=cast(EventLog, _NotHere("event log")),
        tokens=TokenIssuer(TokenConfig(secret=settings.secret_key.get_secret_value())),
        config=config or GatewayConfig(),
    )
    hub = LiveHub(feed, services, WsConfig(commands=False))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await feed.start()
        try:
            with fewer_collections(SERVING_GC_THRESHOLD):
                yield
        finally:
            await hub.close_all()
            await feed.stop()
            await live_redis.aclose()
            await redis.aclose()

    return create_app(
        health=LiveHealth(ServiceHealth(settings), feed),
        version=__version__,
        lifespan=lifespan,
        live=hub,
    )


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT): the kernel
    spreads new connections over every process listening on the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def serve_market_data(settings: Settings, host: str, port: int) -> None:
    """One market-data process on `host:port` (shared with its siblings); until SIGINT/TERM."""
    sock = reuse_port_socket(host, port)
    app = build_market_data(settings)
    server = _Server(
        uvicorn.Config(app, loop="uvloop", log_level="warning", lifespan="on", backlog=4096)
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


async def _seed_demo(
    settings: Settings, core: Core, users: PostgresUserDirectory, report: Report
) -> None:
    if settings.env == "production":
        report("demo users are not created in production: add users with `tradecore users add`")
        return
    try:
        added = await seed_demo_users(core, users, time.time_ns)
    except Exception as exc:
        report(f"warning: the demo users were not created: {exc}")
        return
    base = f"http://{settings.http_host}:{settings.http_port}"
    if added:
        report(f"demo users created: {', '.join(added)}")
    logins = ", ".join(f"{name}/{password}" for name, _, _, password in DEMO_USERS)
    report(f"demo logins (user/password): {logins}; e.g.")
    report(
        f"  curl -s -d grant_type=password -d username=alice -d password=alice-demo "
        f"{base}/auth/token"
    )


class _Server(uvicorn.Server):
    """uvicorn re-raises Ctrl-C after its graceful shutdown, which cancels the lifespan task
    mid-way and prints a traceback; for us Ctrl-C is the normal way to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def run_system(
    settings: Settings, report: Report, *, start_stack: bool = True, migrate: bool = True
) -> None:
    """Start the stack (if asked), migrate, serve until Ctrl-C, then stop what this run started."""
    if port_in_use(settings.http_host, settings.http_port):
        raise StackError(
            f"port {settings.http_port} on {settings.http_host} is taken: stop what runs there "
            "or set TRADECORE_HTTP_PORT"
        )
    started: list[str] = []
    try:
        if start_stack:
            results = Stack(settings, report).up()
            started = [r.name for r in results if r.outcome == "started"]
        if migrate:
            upgrade(settings.dsn, "head", report)
        app = build_gateway(settings, report)
        server = _Server(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                loop="uvloop",
                log_level="warning",
                lifespan="on",
            )
        )
        base = f"http://{settings.http_host}:{settings.http_port}"
        report(f"Tradecore is up: open {base}/ (health: {base}/health, API docs: {base}/docs)")
        report("press Ctrl-C to stop")
        # uvicorn re-raises Ctrl-C after its graceful shutdown; for us that is a normal exit.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        if started:
            report(f"stopping the services this run started: {', '.join(started)}")
            Stack(settings, report, only=started).down()
        report("Tradecore stopped")
