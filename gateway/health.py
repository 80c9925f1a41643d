"""The health report the gateway serves at GET /health, and the port that fills it."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel

State = Literal["up", "down", "degraded"]


class ComponentHealth(BaseModel):
    name: str
    kind: Literal["service", "component"]
    state: State
    address: str = ""
    version: str = ""
    detail: str = ""


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    components: list[ComponentHealth]


class HealthProbe(Protocol):
    """Checks every dependency; implemented in infra, faked in unit tests."""

    async def check(self) -> list[ComponentHealth]: ...
