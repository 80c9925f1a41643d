"""The local stack without Docker: install, start, check and stop PostgreSQL, Redis, Kafka."""

from __future__ import annotations

import time
from dataclasses import dataclass

from infra.settings import Settings
from infra.stack.base import Report, Service, ServiceStatus, StackError
from infra.stack.kafka import Kafka
from infra.stack.postgres import Postgres
from infra.stack.redis import Redis

__all__ = ["ServiceStatus", "Stack", "StackError", "StartResult"]


@dataclass(frozen=True)
class StartResult:
    name: str
    outcome: str  # "started", "already running", "external"
    install_seconds: float
    start_seconds: float
    version: str


class Stack:
    """The three services in start order; each can be external (settings) or run locally."""

    def __init__(self, settings: Settings, report: Report = print, only: list[str] | None = None):
        self.settings = settings
        self.report = report
        services: list[Service] = [
            Postgres(settings, report),
            Redis(settings, report),
            Kafka(settings, report),
        ]
        self.services = [s for s in services if only is None or s.name in only]

    def up(self) -> list[StartResult]:
        """Bring every service up; already-running ones are left alone. Idempotent."""
        results = []
        for service in self.services:
            results.append(self._up_one(service))
        return results

    def _up_one(self, service: Service) -> StartResult:
        if not service.managed:
            try:
                version = service.probe()
            except Exception as exc:
                raise StackError(
                    f"{service.name}: the external instance at {service.address} does not answer "
                    f"({exc}). Check the TRADECORE_* URL settings or start it."
                ) from exc
            self.report(f"{service.name:9} external at {service.address}: {version}")
            return StartResult(service.name, "external", 0.0, 0.0, version)
        if service.pid() is not None:
            version = service.wait_healthy(30)
            self.report(f"{service.name:9} already running at {service.address}: {version}")
            return StartResult(service.name, "already running", 0.0, 0.0, version)
        t0 = time.monotonic()
        installed = service.install()
        t1 = time.monotonic()
        service.check_ports_free()
        self.report(f"{service.name:9} starting on {service.address} ...")
        service.start()
        t2 = time.monotonic()
        version = service.probe()
        install_note = f", installed in {t1 - t0:.1f} s" if installed else ""
        self.report(f"{service.name:9} ready in {t2 - t1:.1f} s{install_note}: {version}")
        return StartResult(service.name, "started", t1 - t0, t2 - t1, version)

    def down(self) -> None:
        """Stop every locally run service, in reverse order, leaving no process behind."""
        for service in reversed(self.services):
            if not service.managed:
                continue
            if service.pid() is None:
                self.report(f"{service.name:9} not running")
                continue
            service.stop()
            self.report(f"{service.name:9} stopped")

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]
