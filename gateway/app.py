"""The FastAPI application: built by `create_app` from its dependencies, never at import time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Response

from gateway.health import ComponentHealth, HealthProbe, HealthReport

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    health: HealthProbe, version: str, *, lifespan: Lifespan | None = None
) -> FastAPI:
    """The gateway. ``lifespan`` starts and stops what runs beside it (the core, the demo)."""
    app = FastAPI(title="Tradecore", version=version, lifespan=lifespan)

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

    return app
