"""The read side as one service beside the gateway: the Kafka relay and the projector runner.

`tradecore up` runs both in its own process (`tradecore projections relay` and
`tradecore projections run` run them alone), plus the retention scheduler that drops raw
trades older than `TRADECORE_TRADES_RETENTION` (default 30d; `off` disables it). The
projectors consume Kafka when it is reachable, else the event store directly; either way
each read model stays exactly once by its stored position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from gateway.health import ComponentHealth
from infra.kafka_source import KafkaSource
from infra.readmodels import EventStoreSource, PostgresReadModels, RetentionScheduler, parse_age
from infra.relay import Relay, ensure_topic
from infra.settings import Settings
from projections.registry import all_projectors
from projections.runner import ProjectionRunner

Report = Callable[[str], None]
TOPIC = "tradecore.events"


def log_database(dsn: str) -> str | None:
    """The event log's database when it is not the default ``tradecore``, else None: what
    keeps two logs apart on one broker (``log_topic``) and one Redis (``redis_prefix_for``)."""
    database = urlsplit(dsn).path.lstrip("/") or "tradecore"
    return None if database == "tradecore" else database


def log_topic(dsn: str) -> str:
    """One topic per event log: the database name keeps two logs on one broker apart."""
    database = log_database(dsn)
    return TOPIC if database is None else f"{TOPIC}.{database}"


class ReadSide:
    def __init__(
        self,
        settings: Settings,
        report: Report,
        *,
        dsn: str | None = None,
        retention: str | None = None,
    ) -> None:
        self.settings = settings
        self.report = report
        self.dsn = dsn or settings.dsn
        self.topic = log_topic(self.dsn)
        group = "tradecore-projectors"
        self.group = group if self.topic == TOPIC else f"{group}.{self.topic}"
        self.relay: Relay | None = None
        self.storage = PostgresReadModels(self.dsn)
        self.store = EventStoreSource(self.dsn)
        self.source: KafkaSource | EventStoreSource | None = None
        self.runner = ProjectionRunner(self.storage, all_projectors(), backfill=self.store)
        # How long raw trades are kept: "30d", "12h", "off"; None: the settings' choice.
        keep = parse_age(settings.trades_retention if retention is None else retention)
        self.retention = None if keep is None else RetentionScheduler(self.dsn, keep)
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._errors: dict[str, str] = {}

    async def start(self) -> None:
        await self.storage.open()
        await self.store.open()
        servers = self.settings.kafka_servers
        try:
            await ensure_topic(servers, self.topic)
            self.relay = Relay(self.dsn, servers, topic=self.topic)
            kafka = KafkaSource(servers, group_id=self.group, topic=self.topic)
            await kafka.open()
            self.source = kafka
            self._spawn("relay", self.relay.run(self._stop))
            via = f"Kafka topic {self.topic}"
        except Exception as exc:
            self._errors["relay"] = f"Kafka unreachable ({exc}); projecting from the event store"
            self.report(f"warning: {self._errors['relay']}")
            self.source = self.store
            via = "the event store"
        self._spawn("projections", self.runner.run(self.source))
        self.report(f"read models: {len(self.runner.projectors)} projectors fed from {via}")
        if self.retention is not None:
            self._spawn("retention", self.retention.run(self._stop))
            self.report(f"retention: raw trades older than {self.retention.keep} are dropped")

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"tradecore-{name}")
        task.add_done_callback(lambda t: self._ended(name, t))
        self._tasks[name] = task

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        self._errors[name] = f"stopped: {exc}" if exc else "stopped"
        # A broken projection stops and says so; it never drifts silently.
        self.report(f"error: the {name} {self._errors[name]}")

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if isinstance(self.source, KafkaSource):
            with contextlib.suppress(Exception):
                await self.source.close()
        await self.store.close()
        await self.storage.close()

    def health(self) -> list[ComponentHealth]:
        components = []
        names = ("relay", "projections") + (("retention",) if self.retention else ())
        for name in names:
            task = self._tasks.get(name)
            running = task is not None and not task.done()
            detail = self._errors.get(name, "")
            if name == "relay" and running and self.relay is not None:
                m = self.relay.metrics
                lag = "" if m.lag_seconds is None else f", lag {m.lag_seconds * 1000:.0f} ms"
                detail = f"published to position {m.position:,}{lag}"
            if name == "projections" and running and self.runner.metrics.lag_seconds is not None:
                lag_ms = self.runner.metrics.lag_seconds * 1000
                detail = f"{self.runner.metrics.events:,} events applied, lag {lag_ms:.0f} ms"
            if name == "retention" and running and self.retention is not None:
                last = self.retention.runs[-1] if self.retention.runs else None
                detail = f"keeps trades {self.retention.keep}" + (
                    f"; last pass {last.method} removed {last.removed}" if last else ""
                )
            components.append(
                ComponentHealth(
                    name=name,
                    kind="component",
                    state="up" if running else "down",
                    detail=detail,
                )
            )
        return components
