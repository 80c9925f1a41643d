"""GraphQL candles: 1,000 one-minute bars of a symbol, every field, through the schema.

Creates a scratch database on the local stack, migrates it, writes 1,000 candle rows (the
read path is what is measured; the candles projector is benchmarked elsewhere), and times:

* ``sql``: the statement alone (the database builds the rows' JSON);
* ``schema``: `schema.execute` of the query with a real asyncpg pool (SQL + resolvers +
  serialisation to Python values);
* ``http``: a POST /graphql through the mounted router (FastAPI + strawberry view + JSON),
  in process via httpx's ASGI transport; token checks are a stub here (the REST check is
  one more in-process request, measured separately as ``auth``).

Each for ``candleSeries`` (compact rows, the form for charts) and ``candles`` (one typed
object per bar: ~11,000 field resolutions in graphql-core). Prints p50/p90/p99 in ms.
Usage: ``python bench/graphql_candles.py [--runs 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import psycopg
from fastapi import FastAPI

from infra.migrations import upgrade
from infra.settings import Settings
from infra.stack import Stack
from read_api import queries
from read_api.context import ReadContext
from read_api.router import ReadApiSetup, graphql_router
from read_api.schema import build_schema
from read_api.viewer import CommandReply, Viewer

BARS = 1_000
SERIES = """query($from: DateTime) { candleSeries(symbol: "BTC-USD", interval: "1m",
  since: $from, limit: 1000) { columns rows } }"""
TYPED = """query($from: DateTime) { candles(symbol: "BTC-USD", interval: "1m", since: $from,
  limit: 1000) { bucket open high low close volume quoteVolume vwap tradeCount firstTradeId
  lastTradeId } }"""
VIEWER = Viewer("bench", "auditor", frozenset(), "Bearer bench", None)
START = datetime(2026, 1, 1, tzinfo=UTC)


class StaticGateway:
    async def authenticate(self, authorization: str) -> Viewer:
        return VIEWER

    async def command(self, *args: Any) -> CommandReply:
        raise NotImplementedError


async def fill(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = []
        for i in range(BARS):
            price = Decimal(30000) + Decimal(i % 97) / 4
            rows.append(("BTC-USD", "1m", START + timedelta(minutes=i), price, price + 5,
                         price - 5, price + 1, Decimal("3.25"), price * Decimal("3.25"), price,
                         7, i * 7 + 1, i * 7 + 7))  # fmt: skip
        await conn.copy_records_to_table(
            "candles",
            records=rows,
            columns=["symbol", "interval", "bucket", "open", "high", "low", "close", "volume",
                     "quote_volume", "vwap", "trade_count", "first_trade_id", "last_trade_id"],
        )  # fmt: skip
    finally:
        await conn.close()


def figures(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100)
    print(f"{name:22s} p50 {q[49]:7.2f} ms   p90 {q[89]:7.2f} ms   p99 {q[98]:7.2f} ms   "
          f"({len(ms)} runs, {BARS:,} bars)")  # fmt: skip


def _bars(data: Any) -> int:
    if "candleSeries" in data:
        return len(data["candleSeries"]["rows"])
    return len(data["candles"])


async def measure(dsn: str, runs: int) -> None:
    schema = build_schema(production=False)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    variables = {"from": START.isoformat()}
    try:
        samples = []
        for i in range(runs + 20):
            started = time.perf_counter()
            await queries.candle_series(pool, "BTC-USD", "1m", START, None, BARS)
            if i >= 20:
                samples.append(time.perf_counter() - started)
        figures("sql     candle_series", samples)
        for name, query in (("series", SERIES), ("typed", TYPED)):
            samples = []
            for i in range(runs + 20):
                context = ReadContext(pool, StaticGateway(), None)
                context.viewer = VIEWER
                started = time.perf_counter()
                result = await schema.execute(
                    query, variable_values=variables, context_value=context
                )
                elapsed = time.perf_counter() - started
                assert result.errors is None and _bars(result.data) == BARS
                if i >= 20:
                    samples.append(elapsed)
            figures(f"schema  candle{'Series' if name == 'series' else 's    '}", samples)
    finally:
        await pool.close()

    app = FastAPI()
    router = graphql_router(ReadApiSetup(dsn), StaticGateway())
    app.include_router(router, prefix="/graphql")
    async with router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, query in (("series", SERIES), ("typed", TYPED)):
                body = {"query": query, "variables": variables}
                headers = {"Authorization": "Bearer bench"}
                samples = []
                for i in range(runs + 20):
                    started = time.perf_counter()
                    response = await client.post("/graphql", json=body, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200
                    assert _bars(response.json()["data"]) == BARS
                    if i >= 20:
                        samples.append(elapsed)
                figures(f"http    candle{'Series' if name == 'series' else 's    '}", samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    settings = Settings(env="test")
    Stack(settings, report=lambda _: None).up()
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = settings.dsn_for("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = settings.dsn_for(name)
        upgrade(dsn, "head", report=lambda _: None)
        asyncio.run(fill(dsn))
        asyncio.run(measure(dsn, args.runs))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
