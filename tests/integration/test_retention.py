"""Retention of raw trades: whole chunks on TimescaleDB, a DELETE on plain PostgreSQL.

Candles (and every other read model) stay; only `trades` loses rows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from infra.readmodels import RetentionScheduler, drop_old_trades, is_hypertable, parse_age
from projections.registry import projector_named
from tests.integration.test_projections import Market, table_rows


def day_start(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


async def trade_times(dsn: str) -> list[datetime]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await conn.fetch("SELECT executed_at FROM trades ORDER BY 1")]
    finally:
        await conn.close()


async def test_timescale_retention_drops_whole_chunks_of_old_trades_and_keeps_candles(
    projected: Market,
) -> None:
    candles = projector_named("candles")
    before = await trade_times(projected.dsn)
    candles_before = await table_rows(projected.dsn, [candles])
    days = sorted({day_start(t) for t in before})
    assert len(days) >= 3  # the scenario spans several daily chunks
    cutoff = days[-1] + timedelta(hours=6)  # inside the last day's chunk

    conn = await asyncpg.connect(projected.dsn)
    try:
        assert await is_hypertable(conn, "trades")
        done = await drop_old_trades(conn, cutoff)
    finally:
        await conn.close()

    after = await trade_times(projected.dsn)
    assert done.method == "drop_chunks"
    assert done.removed == len(days) - 1  # every daily chunk entirely before the cutoff
    # Whole chunks only: the last day's trades before the cutoff stay until its chunk ends.
    assert after == [t for t in before if t >= days[-1]]
    assert all(t >= days[-1] for t in after) and after
    assert await table_rows(projected.dsn, [candles]) == candles_before


async def test_the_scheduler_runs_a_pass_at_once_then_on_its_schedule(projected: Market) -> None:
    before = await trade_times(projected.dsn)
    last_day = day_start(before[-1])
    now = [last_day + timedelta(days=3)]  # a clock the test moves
    scheduler = RetentionScheduler(
        projected.dsn, timedelta(days=3), every=0.05, clock=lambda: now[0]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        async with asyncio.timeout(10):
            while not scheduler.runs:
                await asyncio.sleep(0.01)
            first = scheduler.runs[0]
            assert first.cutoff == last_day and first.method == "drop_chunks"
            assert await trade_times(projected.dsn) == [t for t in before if t >= last_day]
            now[0] += timedelta(days=2)  # the last chunk ages out too
            moved = len(scheduler.runs)
            # A pass in flight may have read the old time: wait for two whole passes after it.
            while len(scheduler.runs) < moved + 3:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert await trade_times(projected.dsn) == []
    after_move = [r for r in scheduler.runs if r.cutoff == last_day + timedelta(days=2)]
    assert [r.removed for r in after_move][:1] == [1]  # the last daily chunk went ...
    assert scheduler.runs[-1].removed == 0  # ... and later passes find nothing to drop


def read_model_tables() -> tuple[str, ...]:
    """Migration 0002's CREATE statements: the same schema, without TimescaleDB."""
    path = Path(__file__).parents[2] / "infra/migrations/versions/0002_read_models.py"
    spec = importlib.util.spec_from_file_location("read_models_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.TABLES)


async def test_plain_postgres_retention_deletes_old_trades_by_time_with_a_warning(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(database)  # no TimescaleDB extension in this database
    try:
        for statement in read_model_tables():
            await conn.execute(statement)
        now = datetime(2026, 6, 1, 12, tzinfo=UTC)
        times = [now - timedelta(hours=h) for h in range(0, 24 * 10, 7)]
        await conn.executemany(
            "INSERT INTO trades VALUES ('ABC-USD', $1, $2, 0, 1, 1, 1, 'buy', 'm', 't', 'a', "
            "'b', 0, 0, $1)",
            list(enumerate(times, 1)),
        )
        await conn.execute(
            "INSERT INTO candles VALUES ('ABC-USD', '1d', $1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)",
            now - timedelta(days=9),
        )
        assert not await is_hypertable(conn, "trades")
        cutoff = now - timedelta(days=3)
        with caplog.at_level(logging.WARNING, logger="infra.readmodels"):
            done = await drop_old_trades(conn, cutoff)
        left = [r[0] for r in await conn.fetch("SELECT executed_at FROM trades ORDER BY 1")]
        candles = await conn.fetchval("SELECT count(*) FROM candles")
    finally:
        await conn.close()
    assert done.method == "delete"
    assert done.removed == sum(1 for t in times if t < cutoff) > 0
    assert left == sorted(t for t in times if t >= cutoff)  # exact, by time
    assert candles == 1
    assert "not a TimescaleDB hypertable" in caplog.text


def test_retention_ages_are_parsed_and_bad_ones_refused() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("7") == timedelta(days=7)
    assert parse_age("off") is None and parse_age("0") is None
    for bad in ("soon", "-3d", "d"):
        with pytest.raises(ValueError):
            parse_age(bad)


@pytest.fixture
async def projected(migrated_database: str) -> Market:
    from tests.integration.test_projections import project_from_store, run_market

    market = await run_market(migrated_database, orders=600)  # several days of trades
    await project_from_store(market.dsn, batch_size=97)
    return market
