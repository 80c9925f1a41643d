"""Serving benchmark: order entry over HTTP and /ws, and trade fan-out to WebSocket subscribers,
against a whole gateway (`build_gateway`: core, REST, /ws, Redis fan-out) under uvicorn.

The server is one process (`bench/serving_server.py`: uvicorn on uvloop, fsync on, a fresh
scratch database `bench_serving_<hex>`, its own Redis key prefix); the load comes from other
processes (`bench/serving_client.py`: asyncio + uvloop clients, a lean HTTP/1.1 keep-alive
client parsing with httptools, and `websockets`). The gateway's rate limits are raised to
10,000,000 requests/s per user for the benchmark (the default is 50/s per user). Phases:

1. `http`: closed loop, `--http-procs` processes x `--http-conns` keep-alive connections, each
   posting resting GTC limit orders (`POST /accounts/{id}/orders`) back to back;
2. `ws`: closed loop, `--ws-sockets` authenticated sockets, each with `--ws-inflight`
   `place_order` commands in flight;
3. `fanout`: `--fanout-subs` anonymous subscribers of `trades.BTC-USD`; one taker socket sends
   IOC buys open loop at `--fanout-rate`/s, each filling one lot of a resting maker sell, so one
   trade per order; latency = trade message read by a subscriber - the order's send time;
4. `held`: the same with `--held-subs` subscribers at `--held-rate` trades/s.

    .venv/bin/python -m bench.serving            # every phase, 15 s each (plus 2 s warm-up)
    .venv/bin/python -m bench.serving --quick    # every phase, 6 s each, fewer subscribers
    .venv/bin/python -m bench.serving --phases http,ws --duration 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from bench.durable import create_database, drop_database, durability_settings
from bench.serving_client import run_fanout, run_http_entry, run_ws_entry
from bench.serving_server import FAST_HASHER, raise_nofile
from gateway.ports import Role
from infra.migrations import upgrade
from infra.settings import Settings
from infra.users import PostgresUserDirectory

PASSWORD = "bench-serving-password"
RATE_LIMIT = 10_000_000
LISTING = {
    "symbol": "BTC-USD", "base": "BTC", "quote": "USD", "base_decimals": 8,
    "quote_decimals": 4, "tick_size": "0.01", "lot_size": "0.01", "min_qty": "0.01",
    "max_qty": "100", "reference_price": "30000.00", "price_band_bps": 1000,
    "maker_fee_bps": 10, "taker_fee_bps": 20,
}  # fmt: skip
TARGETS = {
    "http": "≥ 5,000 orders/s",
    "ws": "≥ 10,000 orders/s",
    "fanout": "p99 ≤ 20 ms",
    "held": "p99 ≤ 100 ms, all held",
}


def say(line: str = "") -> None:
    print(line, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- CPU accounting from /proc ----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _cpu_by_name(names: tuple[str, ...]) -> dict[str, dict[int, float]]:
    """CPU seconds of each live process whose name starts with one of `names`, by pid."""
    out: dict[str, dict[int, float]] = {name: {} for name in names}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        for name in names:
            if comm.startswith(name):
                out[name][int(entry)] = _proc_cpu(int(entry))
    return out


def _children_cpu(parents: set[int]) -> dict[int, float]:
    """CPU seconds of each live child of `parents` (the gateway's publisher process)."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in parents:
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def _machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


@dataclass
class CpuSample:
    server: float
    market_data: float  # the market-data processes' CPU (`--md-procs`), summed
    children: dict[int, float]  # the gateway's children (its publisher process), by pid
    others: dict[str, dict[int, float]]
    busy: float
    total: float
    wall: float

    @classmethod
    def take(cls, server_pid: int, md_pids: tuple[int, ...] = ()) -> CpuSample:
        busy, total = _machine_busy()
        others = _cpu_by_name(("postgres", "redis-server"))
        md = sum(_proc_cpu(pid) for pid in md_pids)
        children = _children_cpu({server_pid})
        return cls(_proc_cpu(server_pid), md, children, others, busy, total, time.monotonic())

    def children_since(self, before: CpuSample) -> float:
        return sum(cpu - before.children.get(pid, 0.0) for pid, cpu in self.children.items())

    def since(self, before: CpuSample, client_cpu: float) -> str:
        wall = max(1e-9, self.wall - before.wall)
        cores = os.cpu_count() or 1

        # Processes that ended during the phase are not counted; new ones count from zero.
        def used(name: str) -> float:
            old = before.others[name]
            return sum(cpu - old.get(pid, 0.0) for pid, cpu in self.others[name].items())

        pg, rd = used("postgres"), used("redis-server")
        busy = (self.busy - before.busy) / max(1e-9, self.total - before.total) * cores
        return (
            f"CPU (cores busy over the phase): server {(self.server - before.server) / wall:.2f}, "
            + (
                f"its publisher process {self.children_since(before) / wall:.2f}, "
                if self.children
                else ""
            )
            + (
                f"market-data servers {(self.market_data - before.market_data) / wall:.2f}, "
                if self.market_data
                else ""
            )
            + f"clients {client_cpu / wall:.2f}, postgres (all backends) {pg / wall:.2f}, "
            f"redis {rd / wall:.2f}; whole machine {busy:.2f} of {cores}"
        )


# -- set-up -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def add_users(dsn: str, traders: list[str]) -> None:
    import asyncio

    async def run() -> None:
        users = PostgresUserDirectory(dsn, hasher=FAST_HASHER)
        await users.open()
        try:
            await users.add("admin", Role.ADMIN, [], PASSWORD)
            for name in traders:
                await users.add(name, Role.TRADER, [f"{name}-1"], PASSWORD)
        finally:
            await users.close()

    asyncio.run(run())


def login(http: httpx.Client, username: str) -> str:
    data = {"grant_type": "password", "username": username, "password": PASSWORD}
    response = http.post("/auth/token", data=data)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def call(http: httpx.Client, token: str, path: str, body: Any) -> dict[str, Any]:
    response = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    out: dict[str, Any] = response.json()
    if out.get("outcome") == "rejected":
        raise RuntimeError(f"{path}: rejected {out.get('reason')}")
    return out


def prepare_market(base: str, traders: list[str], maker_lots: int) -> dict[str, str]:
    """List BTC-USD, open and fund every account, rest the makers' sells; tokens by user."""
    with httpx.Client(base_url=base, timeout=60) as http:
        admin = login(http, "admin")
        call(http, admin, "/instruments", LISTING)
        tokens = {}
        for name in traders:
            call(http, admin, "/accounts", {"account_id": f"{name}-1"})
            for asset, amount in (("USD", "1000000000"), ("BTC", "1000000")):
                body = {"asset": asset, "amount": amount}
                call(http, admin, f"/accounts/{name}-1/deposits", body)
            tokens[name] = login(http, name)
        # The taker phases fill against these: sells of 100 BTC (10,000 lots) at 30,000.00.
        maker = traders[0]
        for _ in range(-(-maker_lots // 10_000)):
            order = {"symbol": "BTC-USD", "side": "sell", "price": "30000.00", "quantity": "100"}
            call(http, tokens[maker], f"/accounts/{maker}-1/orders", order)
    return tokens


def start_server(
    dsn: str, prefix: str, port: int, snapshot_every: int, stats: str, *extra: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "bench.serving_server", dsn, prefix, str(port),
        "--rate-limit", str(RATE_LIMIT), "--snapshot-every", str(snapshot_every),
        "--stats", stats, *extra,
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("ready"):
        server.kill()
        raise RuntimeError(f"the gateway did not start (exit {server.wait()})")
    kind = "market-data process" if extra else "gateway"
    say(f"{kind}: pid {server.pid}, 127.0.0.1:{port}, uvicorn on uvloop, {line[6:]}")
    return server


def stop_server(server: subprocess.Popen[str]) -> None:
    server.send_signal(15)  # SIGTERM: uvicorn shuts down gracefully (lifespan stops the core)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def clear_redis(settings: Settings, prefix: str) -> int:
    client = redis.Redis.from_url(settings.redis_dsn)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for k in range(0, len(keys), 1000):
            client.delete(*keys[k : k + 1000])
        return len(keys)
    finally:
        client.close()


def read_stats(path: str) -> dict[str, Any]:
    with open(path) as f:
        stats: dict[str, Any] = json.load(f)
    return stats


def core_line(before: dict[str, Any], after: dict[str, Any], wall: float) -> str:
    """Where the sequencer's time went during a phase (commands/core.py CoreStats)."""
    d = {
        k: after[k] - before[k]
        for k in ("batches", "commands", "events", "deciding", "appending", "snapshotting")
    }
    batches = max(1, d["batches"])
    return (
        f"core: {d['commands']:,} commands, {d['events']:,} events in {d['batches']:,} batches "
        f"({d['commands'] / batches:,.0f} commands/batch); deciding {d['deciding']:.1f} s "
        f"({1000 * d['deciding'] / batches:.1f} ms/batch), appending+COMMIT "
        f"{d['appending']:.1f} s ({1000 * d['appending'] / batches:.1f} ms/batch), snapshots "
        f"{d['snapshotting']:.1f} s, of {wall:.1f} s wall; slow-consumer disconnects "
        f"{after['slow_disconnects'] - before['slow_disconnects']}"
    )


# -- phases -------------------------------------------------------------------------------------


def pct(values: list[int], p: float) -> float:
    """The p-quantile of nanosecond values, in milliseconds."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p * len(values)))] / 1e6


def run_workers(
    target: Callable[..., None],
    jobs: list[dict[str, Any]],
    label: str,
    unit: str,
    deadline_s: float,
    shared: Callable[[Any], list[dict[str, Any]]] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    watch: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """Run the client processes; give up (and kill them) after `deadline_s`. `shared` makes
    each process's extra arguments (shared memory, queues) from the spawn context;
    `on_result` sees each result as it arrives."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    progress = ctx.Array("q", len(jobs), lock=False)
    extra = shared(ctx) if shared is not None else [{} for _ in jobs]
    procs = [
        ctx.Process(
            target=target, args=(out, progress, slot), kwargs={**job, **extra[slot]}, daemon=True
        )
        for slot, job in enumerate(jobs)
    ]
    for proc in procs:
        proc.start()
    results: list[dict[str, Any]] = []
    started = last = time.monotonic()
    last_count = 0
    last_cpu = watch() if watch is not None else 0.0
    while len(results) < len(procs):
        if time.monotonic() - started > deadline_s:
            for proc in procs:
                proc.kill()
            raise RuntimeError(f"{label}: the clients did not finish in {deadline_s:.0f} s")
        try:
            results.append(out.get(timeout=2.5))
            if on_result is not None:
                on_result(results[-1])
            continue
        except Exception:  # queue.Empty
            pass
        if not any(p.is_alive() for p in procs) and out.empty():
            raise RuntimeError(
                f"{label}: a client process died (exit codes {[p.exitcode for p in procs]})"
            )
        now, count = time.monotonic(), sum(progress)
        busy = ""
        if watch is not None:  # the servers' CPU over this interval: the steady state shows
            cpu = watch()
            busy = f", servers {(cpu - last_cpu) / (now - last):.2f} cores"
            last_cpu = cpu
        say(
            f"  {label} {now - started:5.1f} s: {count:,} {unit} "
            f"({(count - last_count) / (now - last):,.0f}/s){busy}, load average {load_average()}"
        )
        last, last_count = now, count
    for proc in procs:
        proc.join(10)
    return results


def order_entry_report(
    name: str, results: list[dict[str, Any]], duration: float, target: float
) -> tuple[str, bool]:
    latencies = sorted(x for r in results for x in r["latencies_ns"])
    outcomes: dict[str, int] = {}
    for r in results:
        for key, n in r["outcomes"].items():
            outcomes[key] = outcomes.get(key, 0) + n
    accepted = outcomes.get("accepted", 0)
    rate = accepted / duration
    say(
        f"  {name}: {rate:,.0f} orders/s accepted over {duration:.0f} s "
        f"({len(latencies):,} answered: {outcomes}); latency p50 {pct(latencies, 0.5):.1f} ms, "
        f"p99 {pct(latencies, 0.99):.1f} ms, max {pct(latencies, 1.0):.1f} ms"
    )
    return (
        f"{rate:,.0f} orders/s (p50 {pct(latencies, 0.5):.0f} ms, "
        f"p99 {pct(latencies, 0.99):.0f} ms)",
        rate >= target,
    )


def run_fanout_phase(
    phase: str,
    ws_url: str,
    sub_url: str,
    taker: tuple[str, str],
    subs: int,
    rate: float,
    args: argparse.Namespace,
    budget: float,
    watch: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """`--sub-procs` processes share the subscribers; one more process is the taker, which
    starts once every subscriber process has connected and hands the trades' send times
    (through the parent) to the subscriber processes, which compute the latencies."""
    n = max(1, min(args.sub_procs, subs))
    served_by = f"{args.md_procs} market-data process(es)" if sub_url != ws_url else "the gateway"
    say(
        f"  {subs:,} subscribers of trades.BTC-USD in {n} client process(es), served by "
        f"{served_by}; the taker in another client process: {rate:,.0f} IOC orders/s (one "
        "trade each) over one /ws socket to the gateway"
    )
    jobs: list[dict[str, Any]] = [
        dict(
            ws_url=sub_url,
            subscribers=subs // n + (k < subs % n),
            connect_concurrency=max(1, 100 // n),
        )
        for k in range(n)
    ]
    jobs.append(
        dict(
            ws_url=ws_url, taker=taker, rate=rate, warmup=args.warmup, duration=args.duration,
            deflate=args.ws_deflate, wait_s=max(60.0, subs / 50) + 10,
        )
    )  # fmt: skip
    inboxes: list[Any] = []

    def shared(ctx: Any) -> list[dict[str, Any]]:
        connected = ctx.Array("b", n, lock=False)
        inboxes.extend(ctx.Queue() for _ in range(n))
        return [*(dict(connected=connected, inbox=q) for q in inboxes), dict(connected=connected)]

    def on_result(result: dict[str, Any]) -> None:
        if result.get("taker"):
            for inbox in inboxes:
                inbox.put((result["trade_sent"], result["measure_from"]))

    return run_workers(
        run_fanout, jobs, phase, "subscribers ready", budget + max(60, subs / 50) + 30,
        shared=shared, on_result=on_result, watch=watch,
    )  # fmt: skip


def fanout_report(
    name: str, results: list[dict[str, Any]], subs: int, limit_ms: float
) -> tuple[str, bool]:
    taker = next(r for r in results if r.get("taker"))
    parts = [r for r in results if not r.get("taker")]
    r = {
        **taker,
        "latencies_ns": [x for p in parts for x in p["latencies_ns"]],
        "expected": taker["trades"] * subs,
        "held": sum(p["held"] for p in parts),
        "connect_s": max(p["connect_s"] for p in parts),
        "closes": {k: v for p in parts for k, v in p["closes"].items()},
    }
    latencies = sorted(r["latencies_ns"])
    got, expected = len(latencies), r["expected"]
    trades_rate = r["trades"] / max(1e-9, r["offered_s"])
    say(
        f"  {name}: {subs:,} subscribers connected in {r['connect_s']:.1f} s, "
        f"{r['held']:,} held to the end (closed: {r['closes'] or 'none'})"
    )
    say(
        f"  {name}: {r['trades']:,} trades measured ({trades_rate:,.0f}/s; orders {r['outcomes']}, "
        f"{r['unanswered']} unanswered; taker send lag p99 {r['send_lag_p99_ms']:.1f} ms); "
        f"{got:,} of {expected:,} deliveries seen ({got / max(1, expected):.1%}, "
        f"{got / max(1e-9, r['offered_s']):,.0f}/s)"
    )
    say(
        f"  {name}: order sent -> trade read by subscriber: p50 {pct(latencies, 0.5):.1f} ms, "
        f"p90 {pct(latencies, 0.9):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
        f"max {pct(latencies, 1.0):.1f} ms"
    )
    met = (
        bool(latencies)
        and pct(latencies, 0.99) <= limit_ms
        and got >= 0.999 * expected
        and r["held"] == subs
    )
    summary = (
        f"{subs:,} subs, {trades_rate:,.0f} trades/s: p99 {pct(latencies, 0.99):,.0f} ms, "
        f"{got / max(1, expected):.0%} delivered, {r['held']:,} held"
    )
    return summary, met


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="6 s phases, 200/2,000 subscribers")
    p.add_argument("--phases", default="http,ws,fanout,held")
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--traders", type=int, default=16)
    p.add_argument("--http-procs", type=int, default=2)
    p.add_argument("--http-conns", type=int, default=64, help="per process")
    p.add_argument("--ws-procs", type=int, default=1)
    p.add_argument("--ws-sockets", type=int, default=16, help="per process")
    p.add_argument("--ws-inflight", type=int, default=64, help="per socket (server max 256)")
    p.add_argument("--fanout-subs", type=int, default=1000)
    p.add_argument("--fanout-rate", type=float, default=1000)
    p.add_argument("--held-subs", type=int, default=10_000)
    p.add_argument("--held-rate", type=float, default=10)
    p.add_argument(
        "--sub-procs", type=int, default=2, help="client processes sharing the subscribers"
    )
    p.add_argument(
        "--md-procs", type=int, default=0,
        help="market-data processes (tradecore market-data) serving the subscribers of the\n"
        "fanout and held phases on their own port; 0: the gateway serves them",
    )  # fmt: skip
    p.add_argument("--ws-deflate", action="store_true", help="offer permessage-deflate")
    p.add_argument(
        "--snapshot-every", type=int, default=Settings.model_fields["snapshot_every"].default
    )
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 6.0, 1.0
        args.fanout_subs, args.held_subs = 200, 2000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    nofile = raise_nofile()
    settings = Settings(env="test")
    name = f"bench_serving_{uuid.uuid4().hex[:10]}"
    prefix = f"bench:serving:{uuid.uuid4().hex[:10]}:"
    say(f"bench/serving.py {' '.join(sys.argv[1:])}")
    say(
        f"machine: {os.cpu_count()} cores, load average {load_average()} (shared with other jobs),"
        f" open files limit {nofile}"
    )
    dsn = create_database(settings, name)
    server = None
    md_servers: list[subprocess.Popen[str]] = []
    try:
        upgrade(dsn, "head", report=lambda _: None)
        durability = durability_settings(dsn)
        say(
            "PostgreSQL "
            + ", ".join(f"{k}={v}" for k, v in durability.items())
            + f"; database {name}"
        )
        traders = [f"t{i:03d}" for i in range(args.traders)]
        add_users(dsn, traders)
        port = free_port()
        stats = os.path.join(tempfile.mkdtemp(prefix="bench_serving_"), "stats.json")
        server = start_server(dsn, prefix, port, args.snapshot_every, stats)
        say(
            f"gateway rate limits raised for the benchmark: {RATE_LIMIT:,} requests/s per user "
            f"(REST) and per socket (/ws); core snapshot every {args.snapshot_every:,} events; "
            f"WebSocket compression {'offered' if args.ws_deflate else 'off'}"
        )
        base = f"http://127.0.0.1:{port}"
        ws_url = f"ws://127.0.0.1:{port}/ws"
        sub_url = ws_url
        if args.md_procs and {"fanout", "held"} & set(phases):
            md_port = free_port()
            for _ in range(args.md_procs):
                md_servers.append(
                    start_server(
                        dsn, prefix, md_port, args.snapshot_every, stats + ".md", "--market-data"
                    )
                )
            sub_url = f"ws://127.0.0.1:{md_port}/ws"
        taker_lots = 0
        if "fanout" in phases:
            taker_lots += int(args.fanout_rate * (args.duration + args.warmup))
        if "held" in phases:
            taker_lots += int(args.held_rate * (args.duration + args.warmup))
        tokens = prepare_market(base, traders, taker_lots + 10_000)
        # t000 makes the market for the fan-out phases; t001 takes; the rest place orders.
        entry = [(f"{t}-1", tokens[t]) for t in traders[2:]]
        summary: list[tuple[str, str, str, bool]] = []

        for phase in phases:
            say()
            time.sleep(0.6)
            md_pids = tuple(p.pid for p in md_servers)
            pids = (server.pid, *md_pids)

            def servers_cpu(pids: tuple[int, ...] = pids) -> float:
                return sum(_proc_cpu(pid) for pid in pids)

            before, core_before = CpuSample.take(server.pid, md_pids), read_stats(stats)
            say(f"[{phase}] starting, load average {load_average()}")
            budget = args.warmup + args.duration + 120  # connecting, draining, reporting
            if phase == "http":
                n = args.http_procs
                jobs = [
                    dict(
                        base=base,
                        traders=entry[k::n],
                        connections=args.http_conns,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    for k in range(n)
                ]
                say(
                    f"  {n} client processes x {args.http_conns} keep-alive HTTP/1.1 connections "
                    f"(raw asyncio + httptools), closed loop, resting GTC limit orders, "
                    f"{len(entry)} traders"
                )
                results = run_workers(
                    run_http_entry, jobs, phase, "orders", budget, watch=servers_cpu
                )
                figure, met = order_entry_report(phase, results, args.duration, 5000)
            elif phase == "ws":
                n = args.ws_procs
                jobs = [
                    dict(
                        ws_url=ws_url,
                        traders=entry[k::n],
                        sockets=args.ws_sockets,
                        inflight=args.ws_inflight,
                        warmup=args.warmup,
                        duration=args.duration,
                        deflate=args.ws_deflate,
                    )
                    for k in range(n)
                ]
                say(
                    f"  {n} client process(es) x {args.ws_sockets} sockets x {args.ws_inflight} "
                    f"place_order in flight, closed loop, resting GTC limit orders"
                )
                results = run_workers(
                    run_ws_entry, jobs, phase, "orders", budget, watch=servers_cpu
                )
                figure, met = order_entry_report(phase, results, args.duration, 10_000)
            elif phase in ("fanout", "held"):
                subs = args.fanout_subs if phase == "fanout" else args.held_subs
                rate = args.fanout_rate if phase == "fanout" else args.held_rate
                limit = 20.0 if phase == "fanout" else 100.0
                results = run_fanout_phase(
                    phase, ws_url, sub_url, (f"{traders[1]}-1", tokens[traders[1]]), subs, rate,
                    args, budget, servers_cpu,
                )  # fmt: skip
                figure, met = fanout_report(phase, results, subs, limit)
            else:
                raise SystemExit(f"unknown phase {phase!r}")
            time.sleep(0.6)
            after, core_after = CpuSample.take(server.pid, md_pids), read_stats(stats)
            say("  " + after.since(before, sum(r["cpu_s"] for r in results)))
            say("  " + core_line(core_before, core_after, after.wall - before.wall))
            if phase in ("http", "ws"):
                commands = max(1, core_after["commands"] - core_before["commands"])
                per_command = 1e6 * (after.server - before.server) / commands
                publishing = 1e6 * after.children_since(before) / commands
                say(
                    f"  server CPU per order: {per_command:,.0f} µs "
                    "(the figure least moved by other jobs on the machine)"
                    + (f"; its publisher process {publishing:,.0f} µs" if publishing else "")
                )
            summary.append((phase, TARGETS[phase], figure, met))

        say()
        say(f"summary (load average {load_average()}):")
        for phase, target, figure, met in summary:
            say(f"  {phase:7} target {target:24} {'MET' if met else 'NOT MET':8} {figure}")
    finally:
        for each in [*md_servers, *([server] if server is not None else [])]:
            stop_server(each)
        cleared = clear_redis(settings, prefix)
        if args.keep_db:
            say(f"kept database {name}")
        else:
            drop_database(settings, name)
            say(f"dropped database {name}; {cleared} Redis keys under {prefix!r} deleted")


if __name__ == "__main__":
    main()
