"""Restart: how fast a core rebuilds its state from a 1,000,000-event log, from the latest
snapshot plus the tail after it, and from zero.

The log is realistic and loaded fast: the demo market's `MarketSimulator` flow is decided by
a private in-memory `Exchange`, wrapped into envelopes exactly as the core does (`Streams`),
and appended through `PostgresEventStore.append` (COPY, hash chain, fenced writer) in large
batches; a snapshot is saved `--tail` events before the end, as the live core would have.
Each recovery is checked against the generator's state hash, and the time is split into
fetching rows, JSON parsing, `from_dict`, `Exchange.apply` and stream versions (measured
separately over the same rows). A fresh scratch database is used and dropped at the end.

    .venv/bin/python -m bench.restart   # 1,000,000 events, the snapshot at 500,000
    .venv/bin/python -m bench.restart --events 1000000 --tail 500000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench.durable import SYMBOLS, create_database, drop_database, say
from commands.core import Core, Streams, fast_stream_key
from commands.ports import NewEvent, Snapshot
from domain.events import from_dict
from domain.exchange import Exchange
from domain.kernel import exchange_from_snapshot_text
from infra.eventstore import PostgresEventStore
from infra.migrations import upgrade
from infra.settings import Settings
from tradecore.simulator import MarketSimulator


async def load_log(store: PostgresEventStore, events: int, tail: int, seed: int) -> str:
    """Write `events` simulator events (and a snapshot at events - tail); the final state hash."""
    await store.acquire_writer("bench-restart-loader")
    sim = MarketSimulator(seed=seed, symbols=SYMBOLS, traders=50)
    exchange, streams = Exchange(), Streams()
    pending: list[NewEvent] = []
    written = 0
    snapshot_at = events - tail
    started = time.perf_counter()
    commands = iter(sim.setup_commands())
    while written + len(pending) < events:
        command = next(commands, None) or sim.next_command()
        outcome = exchange.handle(command)
        sim.observe(outcome.events)
        if outcome.duplicate:
            continue
        for i, event in enumerate(outcome.events):
            pending.append(streams.envelope(event, i))
        if written + len(pending) >= snapshot_at > written or len(pending) >= 20_000:
            # Snapshot boundaries fall on whole commands, as in the live core.
            await store.append(pending)
            written += len(pending)
            pending = []
            if written >= snapshot_at and (await store.latest_snapshot()) is None:
                state: dict[str, Any] = {
                    "exchange": exchange.snapshot(),
                    "streams": dict(streams.versions),
                }
                await store.save_snapshot(Snapshot(written, exchange.state_hash(), state))
                say(f"  snapshot saved at position {written:,}")
            if written % 100_000 < 20_000:
                rate = written / (time.perf_counter() - started)
                say(f"  {written:,} / {events:,} events written ({rate:,.0f}/s)")
    if pending:
        await store.append(pending)
        written += len(pending)
    say(f"  {written:,} events written in {time.perf_counter() - started:.1f} s")
    await store.close()  # releases the writer lock
    await store.open()
    return exchange.state_hash()


async def timed_recover(store: PostgresEventStore, *, from_zero: bool) -> tuple[float, Core]:
    core = Core(store)
    if from_zero:

        async def no_snapshot() -> None:
            return None

        core.store.latest_snapshot = no_snapshot  # type: ignore[method-assign]
    started = time.perf_counter()
    await core.recover()
    return time.perf_counter() - started, core


async def split(store: PostgresEventStore, after: int) -> list[str]:
    """Replay's cost per stage, each measured alone over the same rows (after `after`)."""
    started = time.perf_counter()
    payloads: list[bytes] = []
    versions: list[int] = []
    async for page in store.read_payloads(after, None, 20_000):
        for _, version, payload in page:
            payloads.append(payload)
            versions.append(version)
    fetch = time.perf_counter() - started
    n = len(payloads)

    started = time.perf_counter()
    dicts = [json.loads(p) for p in payloads]
    parse = time.perf_counter() - started
    started = time.perf_counter()
    events = [from_dict(d) for d in dicts]
    decode = time.perf_counter() - started
    del dicts
    exchange = Exchange()
    if after:
        snap = await store.latest_snapshot()
        assert snap is not None
        exchange = Exchange.from_snapshot(snap.loaded_state()["exchange"])
    started = time.perf_counter()
    for event in events:
        exchange.apply(event)
    apply = time.perf_counter() - started
    observed: dict[str, int] = {}
    started = time.perf_counter()
    for event, version in zip(events, versions, strict=True):
        observed[fast_stream_key(event)] = version
    streams = time.perf_counter() - started
    total = fetch + parse + decode + apply + streams

    def line(name: str, seconds: float) -> str:
        return (
            f"    {name:<34} {seconds:6.2f} s  {1e6 * seconds / max(1, n):5.2f} us/event  "
            f"{100 * seconds / total:3.0f} %"
        )

    return [
        f"  split over {n:,} events, each stage alone (sum {total:.2f} s = "
        f"{n / total:,.0f} events/s if nothing overlapped):",
        line("fetch rows (read_payloads)", fetch),
        line("json.loads (commands/core)", parse),
        line("from_dict (domain)", decode),
        line("Exchange.apply (domain)", apply),
        line("stream versions (commands/core)", streams),
    ]


async def run(args: argparse.Namespace, dsn: str) -> list[str]:
    store = PostgresEventStore(dsn)
    await store.open()
    out: list[str] = []
    try:
        say(f"loading {args.events:,} events (simulator flow, appended through the store)")
        expected = await load_log(store, args.events, args.tail, args.seed)
        head, _ = await store.head()
        snapshot = await store.latest_snapshot()
        assert snapshot is not None
        # The store hands back the JSON text as written (state left empty), or a parsed dict.
        text = snapshot.text
        size = len(text) if text else len(json.dumps(snapshot.state, separators=(",", ":")))
        say(
            f"log: {head:,} events; snapshot at {snapshot.position:,} "
            f"({size / 1e6:.1f} MB of JSON), tail {head - snapshot.position:,} events"
        )
        for from_zero in (False, True):
            name = "from zero" if from_zero else "snapshot + tail"
            say(f"recovering {name} ...")
            seconds, core = await timed_recover(store, from_zero=from_zero)
            replayed = head if from_zero else head - snapshot.position
            ok = core.state_hash() == expected and core.position == head
            out.append(
                f"{name}: {seconds:.2f} s, {replayed:,} events replayed "
                f"({replayed / seconds:,.0f} events/s overall), state hash "
                f"{'matches' if ok else 'DIFFERS'}"
            )
            say(out[-1])
            if not from_zero:
                started = time.perf_counter()
                raw = await store.latest_snapshot()
                load = time.perf_counter() - started
                assert raw is not None
                started = time.perf_counter()
                parts = raw.split_text()
                if parts is not None:
                    exchange_from_snapshot_text(parts[0])
                    how = "exchange_from_snapshot_text (the kernel reads the text)"
                else:
                    Exchange.from_snapshot(raw.loaded_state()["exchange"])
                    how = "Exchange.from_snapshot (domain)"
                build = time.perf_counter() - started
                out.append(
                    f"  of which the snapshot: {load:.2f} s to fetch and decompress, "
                    f"{build:.2f} s {how}"
                )
                say(out[-1])
            if args.split:
                lines = await split(store, 0 if from_zero else snapshot.position)
                out += lines
                for line in lines:
                    say(line)
    finally:
        await store.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=500_000, help="events after the snapshot")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-split", dest="split", action="store_false")
    args = parser.parse_args(argv)
    settings = Settings(env="test")
    name = f"bench_restart_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = create_database(settings, name)
    say(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores are shared)")
    try:
        upgrade(dsn, "head", report=lambda _: None)
        lines = asyncio.run(run(args, dsn))
    finally:
        drop_database(settings, name)
    say("summary:")
    for line in lines:
        say("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
