"""Read side: rebuild throughput, commit-to-read-model lag through Kafka, candle queries.

Three benchmarks, each on its own scratch database(s) (`bench_readside_*`, dropped at the
end unless `--keep`):

* `rebuild`: a realistic log (the demo market's `MarketSimulator` flow decided by a private
  in-memory `Exchange`, enveloped as the core does with `Streams`, appended through
  `PostgresEventStore.append`: COPY, hash chain, fenced writer), then `rebuild_all` of every
  read model from it, timed, with progress; then one projector at a time.
* `lag`: three processes, as deployed: a writer (the core's part: the same flow,
  pre-generated, appended at `--rate` events/s in `--commit-ms` group commits through
  `PostgresEventStore.append`), the relay publishing to Kafka, and the projector runner
  consuming the topic. Per event: the time every projector has committed it minus its
  commit time (`recorded_at`, carried in the `recorded_at_us` header).
* `candles`: see `bench/readside_candles.py`.

    .venv/bin/python -m bench.readside rebuild --events 1000000
    .venv/bin/python -m bench.readside lag --rate 5000 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from commands.core import Streams
from commands.ports import NewEvent
from domain.exchange import Exchange
from infra.eventstore import PostgresEventStore
from infra.kafka_source import KafkaSource
from infra.migrations import upgrade
from infra.readmodels import EventStoreSource, PostgresReadModels
from infra.relay import Relay, ensure_topic
from infra.settings import Settings
from projections.base import Envelope
from projections.registry import all_projectors
from projections.runner import REBUILD_BATCH, ProjectionRunner, rebuild_all

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


def say(line: str) -> None:
    print(line, flush=True)


def create_database(settings: Settings, name: str) -> str:
    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return settings.dsn_for(name)


def drop_database(settings: Settings, name: str) -> None:
    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def generate(events: int, seed: int = 7) -> list[NewEvent]:
    """`events` events of the demo market's flow, decided and enveloped as the core does."""
    from tradecore.simulator import MarketSimulator

    sim = MarketSimulator(seed=seed, symbols=SYMBOLS, traders=50)
    exchange, streams = Exchange(), Streams()
    out: list[NewEvent] = []
    commands = iter(sim.setup_commands())
    while len(out) < events:
        command = next(commands, None) or sim.next_command()
        outcome = exchange.handle(command)
        sim.observe(outcome.events)
        if not outcome.duplicate:
            out.extend(streams.envelope(event, i) for i, event in enumerate(outcome.events))
    return out


async def load_log(dsn: str, events: int, seed: int = 7) -> int:
    store = PostgresEventStore(dsn)
    await store.open()
    try:
        await store.acquire_writer("bench-readside-loader")
        started = time.perf_counter()
        written = 0
        chunk = 100_000
        flow = generate(events, seed)  # in one go (deterministic), appended in 20,000s
        say(f"  generated {len(flow):,} events in {time.perf_counter() - started:.1f} s")
        for i in range(0, len(flow), 20_000):
            await store.append(flow[i : i + 20_000])
            written += len(flow[i : i + 20_000])
            if written % chunk < 20_000:
                say(f"  {written:,} / {len(flow):,} events appended")
        say(f"  log loaded: {written:,} events in {time.perf_counter() - started:.1f} s")
        return written
    finally:
        await store.close()


class Progress:
    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.started = self.last = time.perf_counter()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= 2 or self.done >= self.total:
            self.last = now
            rate = self.done / max(1e-9, now - self.started)
            say(f"  {self.label}: {self.done:,} / {self.total:,} ({rate:,.0f} events/s)")


async def bench_rebuild(args: argparse.Namespace, dsn: str) -> list[str]:
    say(f"loading {args.events:,} events")
    head = await load_log(dsn, args.events, args.seed)
    storage = PostgresReadModels(dsn)
    reader = EventStoreSource(dsn, follow=False, bare=True)
    await storage.open()
    await reader.open()
    lines = []
    try:
        # Reading and decoding alone, for the split.
        started, cpu = time.perf_counter(), time.process_time()
        position = 0
        while batch := await reader.read_envelopes(position, args.batch):
            position = batch[-1].position
        read, cpu = time.perf_counter() - started, time.process_time() - cpu
        lines.append(
            f"read + decode alone: {head:,} events in {read:.1f} s ({head / read:,.0f} events/s;"
            f" Python CPU {cpu / head * 1e6:.1f} µs/event)"
        )
        say(lines[-1])
        for label, projectors in [("all read models", all_projectors())] + (
            [(p.name, [p]) for p in all_projectors()] if args.each else []
        ):
            gc.collect()
            started, cpu = time.perf_counter(), time.process_time()
            await rebuild_all(
                storage,
                projectors,
                reader,
                batch_size=args.batch,
                progress=Progress(head, f"rebuild {label}"),
            )
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            lines.append(
                f"rebuild {label}: {head:,} events in {took:.1f} s ({head / took:,.0f} events/s;"
                f" Python CPU {cpu:.1f} s = {cpu / head * 1e6:.1f} µs/event;"
                f" load average {os.getloadavg()[0]:.1f})"
            )
            say(lines[-1])
        async with storage.transaction() as tx:
            counts = {
                t: await tx.fetchval(f"SELECT count(*) FROM {t}")
                for t in ("trades", "candles", "orders", "order_fills", "balances", "order_book")
            }
        lines.append("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        say(lines[-1])
    finally:
        await reader.close()
        await storage.close()
    return lines


class Timed:
    """A source wrapper: when a batch is applied, each event's lag since its commit."""

    def __init__(self, inner: KafkaSource) -> None:
        self.inner = inner
        self.lags: list[float] = []
        self.seen: set[int] = set()

    def batches(self, after: int) -> AsyncIterator[Sequence[Envelope]]:
        return self.inner.batches(after)

    async def applied(self, batch: Sequence[Envelope]) -> None:
        now_us = time.time() * 1e6
        for e in batch:
            if e.recorded_at_us is not None and e.position not in self.seen:
                self.seen.add(e.position)
                self.lags.append((now_us - e.recorded_at_us) / 1000)
        await self.inner.applied(batch)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _writer(dsn: str, rate: float, commit_ms: float, total: int, seed: int, ready: Any,
            go: Any, done: Any) -> None:  # fmt: skip
    """Child process: the core's part. Appends the flow at `rate` events/s in small commits."""

    async def run() -> None:
        flow = generate(total, seed)
        store = PostgresEventStore(dsn)
        await store.open()
        await store.acquire_writer("bench-readside-lag")
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        per_commit = max(1, int(rate * commit_ms / 1000))
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for i in range(0, len(flow), per_commit):
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await store.append(flow[i : i + per_commit])
            next_at += per_commit / rate
        done.value = len(flow)
        await store.close()

    asyncio.run(run())


def _relay(dsn: str, servers: str, topic: str, stop: Any) -> None:
    """Child process: `tradecore projections relay`."""

    async def run() -> None:
        halt = asyncio.Event()
        relay = Relay(dsn, servers, topic=topic)
        task = asyncio.create_task(relay.run(halt))
        while not stop.is_set() and not task.done():
            await asyncio.sleep(0.05)
        halt.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())


async def bench_lag(args: argparse.Namespace, dsn: str, settings: Settings) -> list[str]:
    """Writer, relay and projectors in three processes, as `tradecore simulate`,
    `tradecore projections relay` and `tradecore projections run` would be."""
    ctx = mp.get_context("spawn")
    total = int(args.rate * (args.seconds + args.warmup))
    topic = f"bench.readside.{uuid.uuid4().hex[:8]}"
    await ensure_topic(settings.kafka_servers, topic)
    ready, go, stop, done = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    say(f"generating {total:,} events in the writer process")
    writer = ctx.Process(
        target=_writer,
        args=(dsn, args.rate, args.commit_ms, total, args.seed, ready, go, done),
    )
    relay = ctx.Process(target=_relay, args=(dsn, settings.kafka_servers, topic, stop))
    writer.start()
    relay.start()
    storage = PostgresReadModels(dsn)
    store = EventStoreSource(dsn)
    kafka = KafkaSource(settings.kafka_servers, group_id=f"bench-{topic}", topic=topic)
    await storage.open()
    await store.open()
    await kafka.open()
    source = Timed(kafka)
    runner = ProjectionRunner(storage, all_projectors(), backfill=store)
    task = asyncio.create_task(runner.run(source))
    lines: list[str] = []
    try:
        while not ready.is_set():
            await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = last_report = loop.time()
        cpu_started, events_started = time.process_time(), runner.metrics.events
        go.set()
        warm = False
        while done.value == 0:
            await asyncio.sleep(0.2)
            now = loop.time()
            if not warm and now - started >= args.warmup:
                warm = True
                source.lags.clear()  # measure after the warm-up
            if task.done():
                task.result()
            if now - last_report >= 5:
                last_report = now
                lags = source.lags[-5000:]
                p99 = percentile(lags, 0.99) if lags else float("nan")
                say(
                    f"  {now - started:5.1f} s: {runner.metrics.events:,} applied "
                    f"({runner.metrics.events / (now - started):,.0f}/s), "
                    f"recent p99 {p99:.1f} ms, load average {os.getloadavg()[0]:.1f}"
                )
        elapsed = loop.time() - started
        head = int(done.value)
        async with asyncio.timeout(120):
            while min((await runner.positions()).values()) < head:
                await asyncio.sleep(0.05)
        lags = source.lags
        per_commit = max(1, int(args.rate * args.commit_ms / 1000))
        lines.append(
            f"offered {args.rate:,.0f} events/s for {args.seconds:.0f} s (+{args.warmup:.0f} s "
            f"warm-up), {per_commit} events per commit; appended {head:,} in {elapsed:.1f} s "
            f"({head / elapsed:,.0f}/s)"
        )
        lines.append(
            f"lag commit -> read model (all {len(runner.projectors)} projectors, via Kafka), "
            f"{len(lags):,} events: "
            f"p50 {percentile(lags, 0.5):.1f} ms, p90 {percentile(lags, 0.9):.1f} ms, "
            f"p99 {percentile(lags, 0.99):.1f} ms, max {max(lags):.1f} ms, "
            f"mean {statistics.fmean(lags):.1f} ms"
        )
        cpu = time.process_time() - cpu_started
        applied = max(1, runner.metrics.events - events_started)
        lines.append(
            f"runner: {runner.metrics.batches:,} batches "
            f"({runner.metrics.events / max(1, runner.metrics.batches):,.0f} events each), "
            f"process CPU {cpu / applied * 1e6:.1f} µs/event; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for line in lines:
            say(line)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.join(30)
        relay.join(30)
        for child in (writer, relay):
            if child.is_alive():
                child.terminate()
        await kafka.close()
        await store.close()
        await storage.close()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    rb = sub.add_parser("rebuild", help="rebuild every read model from a generated log")
    rb.add_argument("--events", type=int, default=1_000_000)
    rb.add_argument("--batch", type=int, default=REBUILD_BATCH)
    rb.add_argument("--each", action="store_true", help="also rebuild each projector alone")
    lg = sub.add_parser("lag", help="commit -> read model lag through Kafka at a fixed rate")
    lg.add_argument("--rate", type=float, default=5_000)
    lg.add_argument("--seconds", type=float, default=60)
    lg.add_argument("--warmup", type=float, default=5)
    lg.add_argument("--commit-ms", type=float, default=10, help="one append every N ms")
    for p in (rb, lg):
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    settings = Settings(env="test")
    name = f"bench_readside_{uuid.uuid4().hex[:8]}"
    dsn = create_database(settings, name)
    say(f"scratch database {name}")
    try:
        upgrade(dsn, "head", report=lambda _: None)
        if args.what == "rebuild":
            lines = asyncio.run(bench_rebuild(args, dsn))
        else:
            lines = asyncio.run(bench_lag(args, dsn, settings))
    finally:
        if not args.keep:
            drop_database(settings, name)
    say("\nsummary:")
    for line in lines:
        say("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
