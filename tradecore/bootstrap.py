"""Wiring: builds every component from the settings and runs the system (nothing at import)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import uvicorn

from gateway.app import create_app
from infra.health import ServiceHealth
from infra.migrations import upgrade
from infra.settings import Settings
from infra.stack import Stack, StackError
from infra.stack.base import port_in_use
from tradecore import __version__

Report = Callable[[str], None]


def build_gateway(settings: Settings) -> object:
    return create_app(health=ServiceHealth(settings), version=__version__)


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
        app = build_gateway(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                app,  # type: ignore[arg-type]
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
