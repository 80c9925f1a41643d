"""Candle queries on a store of 10,000,000 trades: TimescaleDB and plain PostgreSQL, side by
side, on the same data, in one run; then retention (`drop_chunks` against a DELETE).

Two scratch databases on the same server: `bench_readside_ts` (migrated to head: `trades`
and `candles` are hypertables) and `bench_readside_pg` (the same CREATE TABLE statements of
migration 0002, no TimescaleDB extension: ordinary tables). Generated trades (3 symbols, a
seeded random walk, `--days` days) are loaded into both with COPY (text format, the same
bytes to both); the 1-minute candles the candles projector would keep are computed while
generating and loaded with COPY too (the projector itself is measured by
`bench/readside.py rebuild`). Then, for random (symbol, day) pairs, the same for both:

* read model: the day's 1,440 one-minute candles from `candles` (a range on its primary key);
* on the fly from raw trades: `time_bucket` + `first`/`last` (TimescaleDB only), and
  `date_bin` + `array_agg` (both).

    .venv/bin/python -m bench.readside_candles                       # 10,000,000 trades
    .venv/bin/python -m bench.readside_candles --trades 1000000 --runs 100
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.readside import create_database, drop_database, say
from infra.migrations import upgrade
from infra.readmodels import drop_old_trades
from infra.settings import Settings

SYMBOLS = (("BTC-USD", 6_500_000), ("ETH-USD", 320_000), ("SOL-USD", 15_000))  # start, ticks
START = datetime(2026, 1, 1, tzinfo=UTC)
START_US = int(START.timestamp() * 1_000_000)
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


def plain_tables() -> tuple[str, ...]:
    path = Path(__file__).parents[1] / "infra/migrations/versions/0002_read_models.py"
    spec = importlib.util.spec_from_file_location("read_models_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.TABLES)


def money(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


class Generator:
    """Trades in time order over `days` days; 1-minute candles folded as they go."""

    def __init__(self, trades: int, days: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.trades, self.days = trades, days
        self.step_us = days * DAY_US // trades
        self.prices = {s: p for s, p in SYMBOLS}
        self.ids = dict.fromkeys(self.prices, 0)
        self.candles: dict[tuple[str, int], list[int]] = {}
        self._second: tuple[int, str] = (-1, "")

    def stamp(self, us: int) -> str:
        second = us // 1_000_000
        if second != self._second[0]:
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{self._second[1]}.{us % 1_000_000:06d}+00"

    def chunk(self, first: int, count: int) -> bytes:
        rng, out = self.rng, []
        symbols = [s for s, _ in SYMBOLS]
        for n in range(first, first + count):
            us = START_US + n * self.step_us + rng.randrange(self.step_us)
            symbol = symbols[n % 3]
            price = self.prices[symbol] = max(100, self.prices[symbol] + rng.randint(-50, 50))
            lots = rng.randint(1, 500)
            notional = price * lots  # quote cents x lots of 0.001
            self.ids[symbol] += 1
            trade_id = self.ids[symbol]
            side = "buy" if n & 1 else "sell"
            fee = notional // 1000
            out.append(
                f"{symbol}\t{trade_id}\t{self.stamp(us)}\t{us * 1000}\t{money(price)}\t"
                f"{lots / 1000:.3f}\t{notional / 100_000:.5f}\t{side}\tm{n}\tt{n}\tmm-01\t"
                f"taker-01\t{fee / 100_000:.5f}\t{fee / 100_000:.5f}\t{n + 1}\n"
            )
            key = (symbol, us - us % MINUTE_US)
            c = self.candles.get(key)
            if c is None:
                self.candles[key] = [
                    price,
                    price,
                    price,
                    price,
                    lots,
                    notional,
                    1,
                    trade_id,
                    trade_id,
                ]
            else:
                c[1] = max(c[1], price)
                c[2] = min(c[2], price)
                c[3] = price
                c[4] += lots
                c[5] += notional
                c[6] += 1
                c[8] = trade_id
        return "".join(out).encode()

    def candle_rows(self) -> bytes:
        out = []
        for (symbol, minute), (o, h, lo, c, lots, notional, n, first, last) in self.candles.items():
            bucket = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(minute // 1_000_000))
            vwap = f"{notional / lots / 100:.12f}"  # bench only: float VWAP is fine here
            out.append(
                f"{symbol}\t1m\t{bucket}\t{money(o)}\t{money(h)}\t{money(lo)}\t{money(c)}\t"
                f"{lots / 1000:.3f}\t{notional / 100_000:.5f}\t{vwap}\t{n}\t{first}\t{last}\n"
            )
        return "".join(out).encode()


async def copy(conn: asyncpg.Connection, table: str, data: bytes) -> None:
    await conn.copy_to_table(table, source=io.BytesIO(data), format="text")


READ_MODEL = (
    "SELECT bucket, open, high, low, close, volume, quote_volume, vwap, trade_count "
    "FROM candles WHERE symbol = $1 AND interval = '1m' AND bucket >= $2 AND bucket < $3 "
    "ORDER BY bucket"
)
# The same rows with amounts as exact decimal text, as the JSON API sends them (no Decimal
# objects to build on the client).
READ_MODEL_TEXT = (
    "SELECT bucket, open::text, high::text, low::text, close::text, volume::text, "
    "quote_volume::text, vwap::text, trade_count FROM candles WHERE symbol = $1 "
    "AND interval = '1m' AND bucket >= $2 AND bucket < $3 ORDER BY bucket"
)
# The API's shape in one value: the day's candles as a JSON array built by the server
# (amounts as strings: JSON never carries money as binary floats).
READ_MODEL_JSON = (
    "SELECT coalesce(json_agg(json_build_array(bucket, open::text, high::text, low::text, "
    "close::text, volume::text, quote_volume::text, vwap::text, trade_count) ORDER BY bucket), "
    "'[]')::text FROM candles WHERE symbol = $1 AND interval = '1m' AND bucket >= $2 "
    "AND bucket < $3"
)
TIME_BUCKET = (
    "SELECT time_bucket('1 minute', executed_at) AS b, first(price, executed_at), max(price), "
    "min(price), last(price, executed_at), sum(quantity), sum(notional), count(*) "
    "FROM trades WHERE symbol = $1 AND executed_at >= $2 AND executed_at < $3 "
    "GROUP BY b ORDER BY b"
)
DATE_BIN = (
    "SELECT date_bin('1 minute', executed_at, timestamptz 'epoch') AS b, "
    "(array_agg(price ORDER BY executed_at))[1], max(price), min(price), "
    "(array_agg(price ORDER BY executed_at DESC))[1], sum(quantity), sum(notional), count(*) "
    "FROM trades WHERE symbol = $1 AND executed_at >= $2 AND executed_at < $3 "
    "GROUP BY b ORDER BY b"
)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def server_ms(conn: asyncpg.Connection, sql: str, picks: list[Any]) -> float:
    """p50 of the server's own execution time (EXPLAIN ANALYZE), without transfer/decoding."""
    times = []
    for symbol, day in picks:
        plan = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", symbol, day, day + timedelta(days=1)
        )
        times.append(float(json.loads(plan)[0]["Execution Time"]))
    return pct(times, 0.5)


async def timed(conn: asyncpg.Connection, sql: str, picks: list[Any]) -> tuple[list[float], int]:
    statement = await conn.prepare(sql)
    for symbol, day in picks[:5]:  # warm the plan and the cache
        await statement.fetch(symbol, day, day + timedelta(days=1))
    times: list[float] = []
    fetched: list[Any] = []
    for symbol, day in picks:
        started = time.perf_counter()
        fetched = await statement.fetch(symbol, day, day + timedelta(days=1))
        times.append((time.perf_counter() - started) * 1000)
    rows = len(fetched) if len(fetched) != 1 else len(json.loads(fetched[0][0]))
    return times, rows


async def run(args: argparse.Namespace, ts_dsn: str, pg_dsn: str) -> list[str]:
    ts = await asyncpg.connect(ts_dsn)
    pg = await asyncpg.connect(pg_dsn)
    lines: list[str] = []
    try:
        gen = Generator(args.trades, args.days, args.seed)
        started = time.perf_counter()
        chunk = 200_000
        for first in range(0, args.trades, chunk):
            data = gen.chunk(first, min(chunk, args.trades - first))
            await asyncio.gather(copy(ts, "trades", data), copy(pg, "trades", data))
            done = first + min(chunk, args.trades - first)
            if done % 1_000_000 < chunk or done == args.trades:
                rate = done / (time.perf_counter() - started)
                say(f"  {done:,} / {args.trades:,} trades copied into both ({rate:,.0f}/s)")
        candles = gen.candle_rows()
        await asyncio.gather(copy(ts, "candles", candles), copy(pg, "candles", candles))
        load = time.perf_counter() - started
        lines.append(
            f"loaded {args.trades:,} trades ({args.days} days, 3 symbols) and "
            f"{len(gen.candles):,} 1-minute candles into both databases in {load:.0f} s"
        )
        say(lines[-1])
        for conn in (ts, pg):
            await conn.execute("ANALYZE trades")
            await conn.execute("ANALYZE candles")
        rng = random.Random(args.seed)
        picks = [
            (rng.choice(SYMBOLS)[0], START + timedelta(days=rng.randrange(args.days)))
            for _ in range(args.runs)
        ]
        cases = [
            ("read model `candles`, TimescaleDB", ts, READ_MODEL),
            ("read model `candles`, plain PostgreSQL", pg, READ_MODEL),
            ("read model `candles` as text, TimescaleDB", ts, READ_MODEL_TEXT),
            ("read model `candles` as text, plain PostgreSQL", pg, READ_MODEL_TEXT),
            ("read model `candles` as one JSON text, TimescaleDB", ts, READ_MODEL_JSON),
            ("read model `candles` as one JSON text, plain PostgreSQL", pg, READ_MODEL_JSON),
            ("raw trades, time_bucket + first/last, TimescaleDB", ts, TIME_BUCKET),
            ("raw trades, date_bin + array_agg, TimescaleDB", ts, DATE_BIN),
            ("raw trades, date_bin + array_agg, plain PostgreSQL", pg, DATE_BIN),
        ]
        if args.symbol_time_index:
            for conn in (ts, pg):
                await conn.execute(
                    "CREATE INDEX IF NOT EXISTS bench_trades_symbol_time ON trades "
                    "(symbol, executed_at)"
                )
                await conn.execute("ANALYZE trades")
            cases += [
                (f"{label}, + index (symbol, executed_at)", conn, sql)
                for label, conn, sql in cases[6:]
            ]
        say(f"{args.runs} queries each: one symbol, one day of 1-minute candles")
        for label, conn, sql in cases:
            picked = picks if "read model" in label else picks[: args.raw_runs]
            times, rows = await timed(conn, sql, picked)
            server = await server_ms(conn, sql, picked[:20])
            lines.append(
                f"{label}: p50 {pct(times, 0.5):.2f} ms, p90 {pct(times, 0.9):.2f} ms, "
                f"p99 {pct(times, 0.99):.2f} ms ({len(times)} runs, {rows} rows each; "
                f"server execution p50 {server:.2f} ms)"
            )
            say(lines[-1])
        if args.retention_days:
            cutoff = START + timedelta(days=args.retention_days)
            for label, conn in (("TimescaleDB", ts), ("plain PostgreSQL", pg)):
                before = await conn.fetchval("SELECT count(*) FROM trades")
                started = time.perf_counter()
                done_run = await drop_old_trades(conn, cutoff)
                took = time.perf_counter() - started
                after = await conn.fetchval("SELECT count(*) FROM trades")
                lines.append(
                    f"retention, trades before day {args.retention_days}, {label}: "
                    f"{done_run.method} removed {done_run.removed:,} "
                    f"({'chunks' if done_run.method == 'drop_chunks' else 'rows'}; "
                    f"{before - after:,} trades) in {took * 1000:,.0f} ms"
                )
                say(lines[-1])
        lines.append(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        await ts.close()
        await pg.close()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=200, help="read-model queries per case")
    parser.add_argument("--raw-runs", type=int, default=30, help="raw-trade queries per case")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--retention-days", type=int, default=7)
    parser.add_argument(
        "--symbol-time-index",
        action="store_true",
        help="then add an index (symbol, executed_at) to both and query raw trades again",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings(env="test")
    names = ("bench_readside_ts", "bench_readside_pg")
    ts_dsn, pg_dsn = (create_database(settings, n) for n in names)
    try:
        upgrade(ts_dsn, "head", report=lambda _: None)

        async def plain() -> None:
            conn = await asyncpg.connect(pg_dsn)
            try:
                for statement in plain_tables():
                    await conn.execute(statement)
                assert not await conn.fetchval(
                    "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
                )
            finally:
                await conn.close()

        asyncio.run(plain())
        lines = asyncio.run(run(args, ts_dsn, pg_dsn))
    finally:
        if not args.keep:
            for name in names:
                drop_database(settings, name)
    say("\nsummary:")
    for line in lines:
        say("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
