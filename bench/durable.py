"""Durable end to end: many concurrent clients submit orders to the in-process core, which
acknowledges each one only after its events are committed to the real PostgreSQL (fsync on).

Two phases on one core and one continuous order flow (the demo market's `MarketSimulator`):

1. offered rate (open loop): commands are sent on a fixed schedule (default 5,000/s), each as
   its own client task; the ack latency is measured from the *scheduled* send time, so a
   stalled core shows up as latency instead of silently lowering the load;
2. maximum throughput (closed loop): N clients (default 1,000), each submitting its next
   command as soon as the previous one is acknowledged.

Then the naive baseline in the same run: the `eventsourcing` library's `Application.save`,
one new aggregate (one event) per save and commit, on the same PostgreSQL server.

The flow is generated before the clock starts: the simulator is run against a private
in-memory `Exchange`, so cancels and amends target orders that are really live. The core
decides the same commands in the same order (clients submit in flow order), so it sees the
same outcomes; generating the flow live would charge the simulator's own CPU time (about as
much as the core's) to the core. Each run uses a fresh scratch database, dropped at the end.

    .venv/bin/python -m bench.durable   # 5,000/s for 15 s, then 1,000 clients for 20 s
    .venv/bin/python -m bench.durable --rate 5000 --offered-seconds 15 \
        --clients 1000 --max-seconds 20 --baseline-seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg

from commands.core import Core, CoreStats
from commands.ports import RecordedEvent
from domain.commands import Command
from domain.exchange import Exchange
from infra.eventstore import PostgresEventStore
from infra.migrations import upgrade
from infra.settings import Settings
from tradecore.simulator import MarketSimulator

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


def say(line: str) -> None:
    print(line, flush=True)


# -- scratch databases ---------------------------------------------------------------------------


def create_database(settings: Settings, name: str) -> str:
    try:
        conn = psycopg.connect(settings.dsn_for("postgres"), autocommit=True)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL does not answer at {settings.pg_host}:{settings.pg_port} "
            f"({str(exc).strip().splitlines()[0]}). Start the services with "
            "`.venv/bin/tradecore stack up` (or `make stack-up`), then run this again."
        ) from None
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return settings.dsn_for(name)


def drop_database(settings: Settings, name: str) -> None:
    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def durability_settings(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        out = {}
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes"):
            row = conn.execute(f"SHOW {name}").fetchone()
            out[name] = str(row[0]) if row else "?"
        version = conn.execute("SHOW server_version").fetchone()
        out["server_version"] = str(version[0]) if version else "?"
    return out


# -- the order flow ------------------------------------------------------------------------------


def generate_flow(
    seed: int, traders: int, count: int, progress: Callable[[int], None] | None = None
) -> tuple[list[Command], list[Command]]:
    """The set-up commands and `count` flow commands, fed back through a private Exchange."""
    sim = MarketSimulator(seed=seed, symbols=SYMBOLS, traders=traders)
    exchange = Exchange()
    setup = sim.setup_commands()
    for command in setup:
        sim.observe(exchange.handle(command).events)
    flow: list[Command] = []
    for i in range(count):
        command = sim.next_command()
        sim.observe(exchange.handle(command).events)
        flow.append(command)
        if progress is not None and (i + 1) % 50_000 == 0:
            progress(i + 1)
    return setup, flow


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    failed: int = 0
    started: float = 0.0
    finished: float = 0.0
    events_before: int = 0
    events_after: int = 0
    commits_before: int = 0
    commits_after: int = 0
    cpu: float = 0.0  # this process's CPU seconds during the phase
    server_pid: int | None = None  # the writer's PostgreSQL backend, when it runs on this host
    server_cpu: float = float("nan")  # its CPU seconds during the phase
    core_before: CoreStats = field(default_factory=CoreStats)
    core_after: CoreStats = field(default_factory=CoreStats)

    def begin(self, core: Core, counter: Counter) -> None:
        self.events_before, self.commits_before = counter.events, counter.commits
        self.core_before = dataclasses.replace(core.stats)
        self.cpu = time.process_time()
        self.server_cpu = backend_cpu(self.server_pid)
        self.started = asyncio.get_running_loop().time()

    def end(self, core: Core, counter: Counter) -> None:
        self.finished = asyncio.get_running_loop().time()
        self.cpu = time.process_time() - self.cpu
        self.server_cpu = backend_cpu(self.server_pid) - self.server_cpu
        self.events_after, self.commits_after = counter.events, counter.commits
        self.core_after = dataclasses.replace(core.stats)

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.finished - self.started)

    def report(self) -> list[str]:
        acked = len(self.latencies)
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

        events = self.events_after - self.events_before
        commits = self.commits_after - self.commits_before
        a, b = self.core_after, self.core_before
        batches = max(1, a.batches - b.batches)
        return [
            f"{self.name}: {acked:,} orders acknowledged in {self.elapsed:.2f} s = "
            f"{acked / self.elapsed:,.0f} orders/s ({events / self.elapsed:,.0f} events/s, "
            f"{commits / self.elapsed:,.0f} commits/s, {events / max(1, commits):,.0f} "
            f"events per commit), {self.failed} failed",
            f"{self.name}: ack latency p50 {pct(0.50):.2f} ms, p99 {pct(0.99):.2f} ms, "
            f"p99.9 {pct(0.999):.2f} ms, max {1000 * lat[-1] if lat else float('nan'):.2f} ms, "
            f"mean {1000 * statistics.fmean(lat) if lat else float('nan'):.2f} ms",
            f"{self.name}: bench process CPU {100 * self.cpu / self.elapsed:.0f} % of one core; "
            f"sequencer deciding {100 * (a.deciding - b.deciding) / self.elapsed:.0f} % of the "
            f"time ({1e6 * (a.deciding - b.deciding) / max(1, a.commands - b.commands):.1f} us "
            f"per command), appending {100 * (a.appending - b.appending) / self.elapsed:.0f} % "
            f"({1000 * (a.appending - b.appending) / batches:.1f} ms per batch of "
            f"{(a.commands - b.commands) / batches:.0f} commands), snapshots "
            f"{a.snapshotting - b.snapshotting:.2f} s",
            # CPU per order does not depend on what else runs on a shared box; rates do.
            f"{self.name}: CPU per order: bench process {1e6 * self.cpu / max(1, acked):.1f} us, "
            f"PostgreSQL writer backend {1e6 * self.server_cpu / max(1, acked):.1f} us",
        ]


def backend_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a local process from /proc; NaN when unreadable."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Counter:
    """Counts what the core commits (its on_commit hook)."""

    def __init__(self) -> None:
        self.events = 0
        self.commits = 0

    def __call__(self, recorded: list[RecordedEvent]) -> None:
        self.events += len(recorded)
        self.commits += 1


async def ticker(phase: Phase, every: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    last_n, last_t = 0, loop.time()
    while True:
        await asyncio.sleep(every)
        n, t = len(phase.latencies), loop.time()
        say(
            f"  [{phase.name}] {t - phase.started:5.1f} s: {n:,} acknowledged "
            f"({(n - last_n) / (t - last_t):,.0f}/s now)"
        )
        last_n, last_t = n, t


def writer_pid(core: Core) -> int | None:
    pid = getattr(core.store, "writer_pid", None)
    return pid if isinstance(pid, int) else None


async def offered_rate(
    core: Core, flow: Iterator[Command], rate: float, seconds: float, counter: Counter
) -> Phase:
    """Open loop: command i is due at start + i/rate; latency counts from when it was due."""
    loop = asyncio.get_running_loop()
    phase = Phase(f"offered {rate:,.0f}/s", server_pid=writer_pid(core))
    total = int(rate * seconds)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(command: Command, due: float) -> None:
        try:
            await core.submit(command)
        except Exception:
            phase.failed += 1
            return
        phase.latencies.append(loop.time() - due)

    phase.begin(core, counter)
    progress = asyncio.create_task(ticker(phase))
    sent = 0
    while sent < total:
        now = loop.time()
        due_count = min(total, int((now - phase.started) * rate) + 1)
        while sent < due_count:
            due = phase.started + sent / rate
            task = asyncio.create_task(one(next(flow), due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        next_due = phase.started + sent / rate
        # At least a millisecond: shorter sleeps come back at once (the loop's timer
        # resolution) and the generator would spin on the core it shares with the core under
        # test. Commands sent a little late count that lateness: latency is from `due`.
        await asyncio.sleep(max(0.001, next_due - loop.time()))
    await asyncio.gather(*in_flight)
    phase.end(core, counter)
    progress.cancel()
    return phase


async def max_throughput(
    core: Core, flow: Iterator[Command], clients: int, seconds: float, counter: Counter
) -> Phase:
    """Closed loop: each client submits its next command as soon as the last one is answered."""
    loop = asyncio.get_running_loop()
    phase = Phase(f"{clients} clients, closed loop", server_pid=writer_pid(core))
    deadline = 0.0

    async def client() -> None:
        latencies = phase.latencies
        while loop.time() < deadline:
            command = next(flow, None)
            if command is None:
                return
            sent = loop.time()
            try:
                await core.submit(command)
            except Exception:
                phase.failed += 1
                continue
            latencies.append(loop.time() - sent)

    phase.begin(core, counter)
    deadline = phase.started + seconds
    progress = asyncio.create_task(ticker(phase))
    await asyncio.gather(*(client() for _ in range(clients)))
    phase.end(core, counter)
    progress.cancel()
    return phase


# -- the baseline --------------------------------------------------------------------------------


def eventsourcing_baseline(settings: Settings, seconds: float) -> str:
    """`Application.save` of one new aggregate (one event) per call, each its own commit."""
    from urllib.parse import urlparse

    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class PlacedOrder(Aggregate):
        @event("Placed")
        def __init__(self, account: str, symbol: str, side: str, price: str, qty: str) -> None:
            self.account, self.symbol, self.side = account, symbol, side
            self.price, self.qty = price, qty

    name = f"bench_es_{os.getpid()}"
    url = urlparse(create_database(settings, name))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": name,
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "",
        "POSTGRES_PASSWORD": url.password or "",
        "CREATE_TABLE": "y",
    }
    try:
        app = Application(env=env)
        try:
            for _ in range(200):  # warm up: connections, prepared statements
                app.save(PlacedOrder("t1", "BTC-USD", "buy", "100.00", "1"))
            saved = 0
            started = time.perf_counter()
            deadline = started + seconds
            while time.perf_counter() < deadline:
                for _ in range(100):
                    app.save(PlacedOrder("t1", "BTC-USD", "buy", "100.00", "1"))
                saved += 100
            elapsed = time.perf_counter() - started
        finally:
            app.close()
    finally:
        drop_database(settings, name)
    return (
        f"eventsourcing {_version('eventsourcing')} Application.save, one aggregate per commit: "
        f"{saved:,} saves in {elapsed:.2f} s = {saved / elapsed:,.0f} aggregates/s "
        f"({saved / elapsed:,.0f} events/s)"
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# -- the run -------------------------------------------------------------------------------------


async def run_core(
    dsn: str,
    setup: Sequence[Command],
    flow: list[Command],
    args: argparse.Namespace,
) -> list[Phase]:
    store = PostgresEventStore(dsn)
    await store.open()
    counter = Counter()
    core = Core(store, max_batch=args.max_batch, snapshot_every=args.snapshot_every)
    core.on_commit = counter
    await core.start("bench-durable")
    try:
        for command in setup:
            await core.submit(command)
        commands = iter(flow)
        phases = [await offered_rate(core, commands, args.rate, args.offered_seconds, counter)]
        for line in phases[0].report():
            say(line)
        phases.append(await max_throughput(core, commands, args.clients, args.max_seconds, counter))
        for line in phases[1].report():
            say(line)
        head, _ = await store.head()
        say(
            f"log: {head:,} events at the end, all committed by this core in "
            f"{counter.commits:,} commits"
        )
    finally:
        await core.stop()
        await store.close()
    return phases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5_000, help="offered orders/s (open loop)")
    parser.add_argument("--offered-seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=1_000, help="closed-loop clients")
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--max-batch", type=int, default=2_000)
    parser.add_argument("--snapshot-every", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--traders", type=int, default=50)
    parser.add_argument("--flow", type=int, default=0, help="flow commands (default: enough)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)

    settings = Settings(env="test")
    name = f"bench_durable_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    count = args.flow or int(args.rate * args.offered_seconds + 40_000 * args.max_seconds)
    say(f"generating the order flow: {count:,} commands (seed {args.seed}, {args.traders} traders)")
    t0 = time.perf_counter()
    setup, flow = generate_flow(
        args.seed, args.traders, count, lambda n: say(f"  {n:,} / {count:,} generated")
    )
    say(f"  done in {time.perf_counter() - t0:.1f} s")
    # The pre-generated flow is the harness's data, not the core's: keep the cyclic garbage
    # collector from walking it again and again during the run.
    gc.collect()
    gc.freeze()
    dsn = create_database(settings, name)
    try:
        upgrade(dsn, "head", report=lambda _: None)
        durability = durability_settings(dsn)
        say(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)")
        say(
            "PostgreSQL {server_version}: fsync={fsync} synchronous_commit={synchronous_commit} "
            "wal_sync_method={wal_sync_method} full_page_writes={full_page_writes}".format(
                **durability
            )
        )
        if durability["fsync"] != "on" or durability["synchronous_commit"] != "on":
            say("WARNING: durability is off on this server; these figures do not count")
        if args.no_uvloop:
            phases = asyncio.run(run_core(dsn, setup, flow, args))
        else:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                phases = runner.run(run_core(dsn, setup, flow, args))
    finally:
        drop_database(settings, name)
    say("baseline: " + eventsourcing_baseline(settings, args.baseline_seconds))
    say("summary:")
    for phase in phases:
        for line in phase.report():
            say("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
