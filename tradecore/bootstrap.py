"""Wiring: builds every component from the settings and runs the system (nothing at import)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.health import ComponentHealth
from infra.health import ServiceHealth
from infra.migrations import upgrade
from infra.settings import Settings
from infra.stack import Stack, StackError
from infra.stack.base import port_in_use
from tradecore import __version__
from tradecore.market import CoreService, DemoMarket, MarketOptions

Report = Callable[[str], None]


class SystemHealth:
    """The services' health plus the core's and, when it runs, the demo market's."""

    def __init__(self, services: ServiceHealth, core: CoreService) -> None:
        self.services = services
        self.core = core
        self.core_error = ""
        self.market: DemoMarket | None = None

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
        return components


def build_gateway(settings: Settings, report: Report = lambda _: None) -> FastAPI:
    """The gateway with the live core beside it and, with ``settings.demo_market``, the demo."""
    core = CoreService(settings.dsn, snapshot_every=settings.snapshot_every)
    health = SystemHealth(ServiceHealth(settings), core)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await core.start()
        except Exception as exc:
            health.core_error = f"the core did not start: {exc}"
            report(f"warning: {health.core_error}; serving without it")
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
        try:
            yield
        finally:
            if market is not None:
                await market.stop()
                report("demo market stopped")
            await core.stop()

    return create_app(health=health, version=__version__, lifespan=lifespan)


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
