"""The live core as a service, and the demo market: the simulator driving that core.

Used by `tradecore simulate` (in the foreground, with progress lines) and by `tradecore up`
(in the background of the gateway). It takes over from an earlier run on the same store:
instruments and accounts that exist are not listed or opened again, resting orders of the
simulated traders are adopted, and the random walk starts at each symbol's last price.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg

from commands.core import Core
from commands.ports import RecordedEvent
from domain.commands import Command
from domain.values import Symbol
from gateway.health import ComponentHealth, State
from infra.eventstore import PostgresEventStore
from projections.alert_evaluator import AlertEvaluator
from tradecore.simulator import DriveStats, MarketSimulator, SubmitResult, drive

Report = Callable[[str], None]


@dataclass
class MarketOptions:
    seed: int = 7
    symbols: Sequence[str] = ("BTC-USD", "ETH-USD", "SOL-USD")
    traders: int = 20
    rate: float = 100.0
    clients: int = 8
    count: int | None = None
    duration: float | None = None
    snapshot_every: int = 500_000
    acks: Path | None = None
    progress_every: float = 5.0
    run_id: str = field(default_factory=lambda: f"r{time.time_ns():x}")


def writer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class CoreService:
    """The live core on the PostgreSQL event store: opened, fenced, recovered, then serving."""

    def __init__(
        self,
        dsn: str,
        *,
        snapshot_every: int = 500_000,
        on_commit: Callable[[list[RecordedEvent]], None] | None = None,
    ) -> None:
        self.store = PostgresEventStore(dsn)
        self.core = Core(self.store, snapshot_every=snapshot_every, on_commit=on_commit)
        self.started = False

    async def start(self) -> None:
        await self.store.open()
        try:
            await self.core.start(writer_name())
        except BaseException:
            await self.store.close()
            raise
        # The recovered state is long-lived: keep the cyclic GC from walking it again and again.
        gc.freeze()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.core.stop()
            await self.store.close()
            self.started = False

    def health(self) -> ComponentHealth:
        core = self.core
        if core.fatal is not None:
            return ComponentHealth(
                name="core", kind="component", state="down", detail=f"stopped: {core.fatal}"
            )
        state: State = "up" if self.started else "down"
        return ComponentHealth(
            name="core", kind="component", state=state, detail=f"log position {core.position:,}"
        )


class AlertService:
    """The alert evaluator beside the core: reads the log, submits `TriggerAlert` to the core.

    After an error (the core stopped, the database went away) it says so and starts over
    from the log a little later: triggering is idempotent, so starting over is safe."""

    def __init__(self, dsn: str, core: Core, report: Report, *, retry_s: float = 5.0) -> None:
        self.dsn = dsn
        self.core = core
        self.report = report
        self.retry_s = retry_s
        self.evaluator: AlertEvaluator | None = None
        self.error = ""
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        self._task = asyncio.create_task(self._run(), name="tradecore-alert-evaluator")

    async def _run(self) -> None:
        assert self._pool is not None
        while True:
            self.evaluator = AlertEvaluator(self._pool, self.core.submit, time.time_ns)
            try:
                await self.evaluator.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.report(f"error: the alert evaluator stopped ({self.error}); restarting")
                await asyncio.sleep(self.retry_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def health(self) -> ComponentHealth:
        running = self._task is not None and not self._task.done()
        evaluator = self.evaluator
        detail = (
            ""
            if evaluator is None
            else f"{evaluator.watch.watching:,} alerts watched, {evaluator.stats.triggered:,} "
            f"triggered, at position {evaluator.stats.position:,}"
        )
        if self.error:
            detail = f"{detail}; last error: {self.error}" if detail else self.error
        return ComponentHealth(
            name="alert-evaluator",
            kind="component",
            state="up" if running else "down",
            detail=detail,
        )


class DemoMarket:
    """The simulator driving a running core."""

    def __init__(self, core: Core, options: MarketOptions, report: Report) -> None:
        self.options = options
        self.report = report
        self.core = core
        self.stats = DriveStats()
        self._acks: IO[str] | None = None
        self._task: asyncio.Task[DriveStats] | None = None
        self._progress: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        opts = self.options
        exchange = self.core.exchange
        sim = MarketSimulator(
            opts.seed, opts.symbols, opts.traders, run_id=opts.run_id, clock=time.time_ns
        )
        setup = sim.setup_commands(
            known_symbols=exchange.instruments, known_accounts=exchange.accounts
        )
        for command in setup:
            await self.core.submit(command)
        sim.adopt(
            (o.order_id, o.account_id, o.symbol, o.side, o.price_ticks, o.remaining_lots)
            for o in exchange.orders.values()
            if o.resting and o.account_id in set(sim.accounts)
        )
        for symbol in sim.symbols:
            last = exchange.last_price.get(Symbol(symbol))
            if last is not None:
                sim.set_mid(symbol, last)
        self.report(
            f"demo market: {', '.join(sim.symbols)}; {len(sim.accounts)} simulated traders; "
            f"{'as fast as possible' if opts.rate <= 0 else f'{opts.rate:g} commands/s'}; "
            f"log at position {self.core.position:,}"
        )
        if opts.acks is not None:
            self._acks = opts.acks.open("a", encoding="utf-8")
        self._task = asyncio.create_task(self._drive(sim), name="tradecore-simulator")
        if opts.progress_every > 0:
            self._progress = asyncio.create_task(self._report_progress())

    async def _drive(self, sim: MarketSimulator) -> DriveStats:
        opts = self.options
        try:
            return await drive(
                self.core,
                sim,
                rate=opts.rate,
                clients=opts.clients,
                count=opts.count,
                duration=opts.duration,
                on_ack=self._record_ack if self._acks else None,
                stats=self.stats,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            self.report(f"demo market stopped: {exc}")
            raise

    def _record_ack(self, command: Command, result: SubmitResult) -> None:
        """One line per acknowledged command, written before the next is sent: what a
        client knows was committed (used by the crash tests)."""
        assert self._acks is not None
        self._acks.write(
            json.dumps({"command_id": command.command_id, "positions": list(result.positions)})
            + "\n"
        )
        self._acks.flush()

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.options.progress_every)
            self.report(f"  {self.stats.line()}; log at position {self.core.position:,}")

    async def wait(self) -> DriveStats:
        """Until the flow ends (count or duration reached) or fails."""
        assert self._task is not None
        return await self._task

    async def stop(self) -> None:
        for task in (self._progress, self._task):
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        if self._acks is not None:
            self._acks.close()

    def health(self) -> ComponentHealth:
        running = self._task is not None and not self._task.done()
        return ComponentHealth(
            name="simulator",
            kind="component",
            state="up" if running else "down",
            detail=self.stats.line() if self.error is None else f"stopped: {self.error}",
        )


async def run_foreground(dsn: str, options: MarketOptions, report: Report) -> DriveStats:
    """`tradecore simulate`: run until count/duration, Ctrl-C or SIGTERM, then stop cleanly.

    The signal handlers are installed here because a process started in the background by a
    shell inherits SIGINT as ignored, and asyncio then leaves it so."""
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, main.cancel)
    service = CoreService(dsn, snapshot_every=options.snapshot_every)
    await service.start()
    market = DemoMarket(service.core, options, report)
    try:
        await market.start()
        with contextlib.suppress(asyncio.CancelledError):
            await market.wait()
    finally:
        await market.stop()
        await service.stop()
    return market.stats
