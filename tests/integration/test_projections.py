"""Read models from the real event store: candles, portfolios, orders, book, stats, rebuilds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

import asyncpg
import pandas as pd
import pytest

from commands.core import Core
from domain.events import TradeExecuted, from_dict
from domain.exchange import Exchange
from domain.values import Side, Symbol, from_atoms
from infra.eventstore import PostgresEventStore
from infra.readmodels import EventStoreSource, PostgresReadModels
from projections.base import Projector
from projections.candles import INTERVALS
from projections.registry import all_projectors
from projections.runner import ProjectionRunner, Source, rebuild
from tests.unit.domain import factories as f
from tests.unit.projections.scenario import ACCOUNTS, market_commands

# --- helpers shared with the Kafka and relay tests -------------------------------------------


@dataclass
class Market:
    dsn: str
    exchange: Exchange  # the core's own state after the scenario: the truth to compare with
    head: int


async def run_market(dsn: str, orders: int = 200, seed: int = 7) -> Market:
    store = PostgresEventStore(dsn)
    await store.open()
    core = Core(store)
    await core.start("test-core")
    try:
        for command in market_commands(orders, seed):
            await core.submit(command)
    finally:
        await core.stop()
        head = (await store.head())[0]
        await store.close()
    return Market(dsn, core.exchange, head)


async def run_until_caught_up(
    runner: ProjectionRunner,
    source: Source,
    head: int,
    timeout: float = 60,
    until: Callable[[], bool] = lambda: True,
) -> None:
    """Run the runner until every projector reached `head` (and `until()` holds); its errors
    propagate."""
    task = asyncio.create_task(runner.run(source))
    try:
        async with asyncio.timeout(timeout):
            while min((await runner.positions()).values()) < head or not until():
                if task.done():
                    task.result()
                    raise AssertionError("the source ended before the projectors caught up")
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def project_from_store(
    dsn: str, projectors: Sequence[Projector] | None = None, batch_size: int = 1_000
) -> None:
    storage = PostgresReadModels(dsn)
    source = EventStoreSource(dsn, batch_size=batch_size, follow=False)
    await storage.open()
    await source.open()
    try:
        await ProjectionRunner(storage, projectors or all_projectors()).run(source)
    finally:
        await source.close()
        await storage.close()


async def table_rows(dsn: str, projectors: Sequence[Projector] | None = None) -> dict[str, Any]:
    """Every row of every read-model table, sorted: for row-for-row comparisons."""
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, Any] = {}
        for projector in projectors or all_projectors():
            for table in projector.tables:
                rows = await conn.fetch(f"SELECT * FROM {table}")
                out[table] = sorted(tuple(map(repr, r.values())) for r in rows)
        return out
    finally:
        await conn.close()


async def rebuild_all(dsn: str) -> None:
    storage = PostgresReadModels(dsn)
    reader = EventStoreSource(dsn, follow=False, bare=True)  # as `tradecore projections rebuild`
    await storage.open()
    await reader.open()
    try:
        for projector in all_projectors():
            await rebuild(storage, projector, reader)
    finally:
        await reader.close()
        await storage.close()


async def trades_in_log(dsn: str) -> list[TradeExecuted]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT state FROM events WHERE event_type = 'TradeExecuted' ORDER BY notification_id"
        )
    finally:
        await conn.close()
    trades = [from_dict(json.loads(bytes(r[0]))) for r in rows]
    assert all(isinstance(t, TradeExecuted) for t in trades)
    return trades  # type: ignore[return-value]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def market(migrated_database: str) -> AsyncIterator[Market]:
    yield await run_market(migrated_database)


@pytest.fixture
async def projected(market: Market) -> Market:
    # Small batches: candles and statistics are merged across many transactions.
    await project_from_store(market.dsn, batch_size=13)
    return market


TICK, LOT = Decimal("0.01"), Decimal("1")  # the factories' ABC-USD
PANDAS_RULES = {"1s": "1s", "1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h", "1d": "1D"}


def expected_vwap(quote_volume: Decimal, volume: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (quote_volume / volume).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


# --- tests -------------------------------------------------------------------------------------


async def test_candles_equal_a_pandas_resample_of_the_same_trades_for_every_interval(
    projected: Market,
) -> None:
    trades = await trades_in_log(projected.dsn)
    assert len(trades) > 50
    frame = pd.DataFrame(
        {
            "price": [t.price_ticks for t in trades],
            "qty": [t.qty_lots for t in trades],
            "notional": [t.notional_atoms for t in trades],
            "trade_id": [t.trade_id for t in trades],
        },
        index=pd.to_datetime([t.timestamp_ns for t in trades], unit="ns"),  # naive UTC
    )
    conn = await asyncpg.connect(projected.dsn)
    try:
        for interval, rule in PANDAS_RULES.items():
            resampled = frame.resample(rule, origin="epoch")
            ohlc = resampled["price"].ohlc()
            sums = resampled[["qty", "notional"]].sum()
            count = resampled["trade_id"].count()
            expected = []
            for bucket, row in ohlc.iterrows():
                n = int(count[bucket])
                if n == 0:
                    continue
                volume = LOT * int(sums.at[bucket, "qty"])
                quote = Decimal(int(sums.at[bucket, "notional"])) / 100
                expected.append(
                    (
                        bucket.tz_localize("UTC").to_pydatetime(),
                        *(TICK * int(row[k]) for k in ("open", "high", "low", "close")),
                        volume,
                        quote,
                        expected_vwap(quote, volume),
                        n,
                    )
                )
            stored = await conn.fetch(
                "SELECT bucket, open, high, low, close, volume, quote_volume, vwap, trade_count "
                "FROM candles WHERE symbol = $1 AND interval = $2 ORDER BY bucket",
                f.SYMBOL,
                interval,
            )
            assert [tuple(r) for r in stored] == expected, interval
    finally:
        await conn.close()
    assert set(INTERVALS) == set(PANDAS_RULES)
    assert len({b[0] for b in expected}) >= 2  # the 1d candles span a UTC midnight


def recompute_positions(trades: Sequence[TradeExecuted]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Average cost, exact rationals: (quantity, avg_cost, realized P&L) per account."""
    book: dict[str, list[Fraction]] = {}
    for t in trades:
        price, qty = Fraction(t.price_ticks, 100), Fraction(t.qty_lots)
        buyer = t.taker_account_id if t.taker_side is Side.BUY else t.maker_account_id
        seller = t.maker_account_id if t.taker_side is Side.BUY else t.taker_account_id
        for account, signed in ((buyer, qty), (seller, -qty)):
            q, cost, realized = book.setdefault(account, [Fraction(0)] * 3)
            if q == 0 or (q > 0) == (signed > 0):
                cost = (cost * abs(q) + price * abs(signed)) / (abs(q) + abs(signed))
            else:
                closing = min(abs(q), abs(signed))
                realized += (price - cost) * closing * (1 if q > 0 else -1)
                if q + signed == 0:
                    cost = Fraction(0)
                elif (q + signed > 0) != (q > 0):
                    cost = price
            book[account] = [q + signed, cost, realized]
    return {(a, f.SYMBOL): tuple(v) for a, v in book.items()}


async def test_portfolios_equal_the_cores_balances_and_a_recomputation_from_the_trades(
    projected: Market,
) -> None:
    ex = projected.exchange
    conn = await asyncpg.connect(projected.dsn)
    try:
        balances = {
            (r[0], r[1]): (r[2], r[3])
            for r in await conn.fetch("SELECT account_id, asset, available, reserved FROM balances")
        }
        positions = {
            (r[0], r[1]): (r[2], r[3], r[4], r[5], r[6])
            for r in await conn.fetch(
                "SELECT account_id, symbol, quantity, avg_cost, realized_pnl, last_price, "
                "unrealized_pnl FROM positions_valued"
            )
        }
        fees = dict(await conn.fetch("SELECT asset, collected FROM venue_fees"))
    finally:
        await conn.close()
    expected_balances = {
        (account, asset): tuple(from_atoms(x, 2) for x in ex.balance(account, asset))
        for account in ACCOUNTS
        for asset in (f.USD, f.ABC)
    }
    assert balances == expected_balances
    assert any(reserved > 0 for _, reserved in balances.values())  # resting orders hold funds
    assert fees == {f.USD: from_atoms(ex.fee_balance(f.USD), 2)}

    trades = await trades_in_log(projected.dsn)
    last = Decimal(trades[-1].price_ticks) / 100
    expected = recompute_positions(trades)
    assert set(positions) == set(expected)
    for key, (qty, cost, realized) in expected.items():
        p_qty, p_cost, p_realized, p_last, p_unrealized = positions[key]
        assert p_qty == Decimal(qty.numerator) / qty.denominator
        assert abs(Fraction(p_cost) - cost) < Fraction(1, 10**15), key
        assert abs(Fraction(p_realized) - realized) < Fraction(1, 10**12), key
        assert p_last == last
        assert abs(Fraction(p_unrealized) - (Fraction(last) - cost) * qty) < Fraction(1, 10**12)
    assert any(realized != 0 for _, _, realized in expected.values())


async def test_the_order_book_and_open_orders_match_the_cores_book(projected: Market) -> None:
    ex = projected.exchange
    book = ex.books[Symbol(f.SYMBOL)]
    levels: dict[tuple[str, int], list[int]] = {}
    for order in ex.orders.values():
        if order.resting:
            level = levels.setdefault((order.side.value, order.price_ticks), [0, 0])
            level[0] += order.remaining_lots
            level[1] += 1
    conn = await asyncpg.connect(projected.dsn)
    try:
        stored = {
            (r[0], int(r[1])): [int(r[2]), int(r[3])]
            for r in await conn.fetch(
                "SELECT side, price_ticks, quantity, order_count FROM order_book"
            )
        }
        open_orders = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT order_id, remaining_qty FROM orders "
                "WHERE status IN ('open', 'partially_filled')"
            )
        }
        statuses = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM orders")}
    finally:
        await conn.close()
    assert stored == levels and len(levels) > 3
    assert book is not None
    resting = {o.order_id: Decimal(o.remaining_lots) for o in ex.orders.values() if o.resting}
    assert open_orders == resting
    assert {"filled", "canceled", "open"} <= statuses


async def test_market_stats_cover_the_24_hours_up_to_the_last_trade(projected: Market) -> None:
    trades = await trades_in_log(projected.dsn)
    last_minute = trades[-1].timestamp_ns // 60_000_000_000
    window = [t for t in trades if last_minute - 1439 <= t.timestamp_ns // 60_000_000_000]
    conn = await asyncpg.connect(projected.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT open, high, low, last, volume, trade_count FROM market_stats_24h "
            "WHERE symbol = $1",
            f.SYMBOL,
        )
    finally:
        await conn.close()
    prices = [Decimal(t.price_ticks) / 100 for t in window]
    assert tuple(row) == (
        prices[0], max(prices), min(prices), prices[-1],
        Decimal(sum(t.qty_lots for t in window)), len(window),
    )  # fmt: skip
    assert len(window) < len(trades)  # the scenario is longer than a day


async def test_rebuilt_read_models_equal_the_incrementally_built_ones_row_for_row(
    projected: Market,
) -> None:
    incremental = await table_rows(projected.dsn)
    assert all(incremental[t] for t in ("trades", "candles", "balances", "orders", "order_book"))
    await rebuild_all(projected.dsn)
    assert await table_rows(projected.dsn) == incremental


async def test_replaying_events_already_applied_changes_nothing(projected: Market) -> None:
    before = await table_rows(projected.dsn)
    storage = PostgresReadModels(projected.dsn)
    reader = EventStoreSource(projected.dsn, follow=False)
    await storage.open()
    await reader.open()
    try:
        runner = ProjectionRunner(storage, all_projectors())
        await runner.apply(await reader.read_envelopes(0, 10_000))  # everything, again
        positions = await runner.positions()
    finally:
        await reader.close()
        await storage.close()
    assert await table_rows(projected.dsn) == before
    assert set(positions.values()) == {projected.head}


async def test_the_event_store_source_wakes_on_notify_and_projects_new_events(
    projected: Market,
) -> None:
    storage = PostgresReadModels(projected.dsn)
    source = EventStoreSource(projected.dsn, poll=30.0)  # only a NOTIFY can wake it in time
    await storage.open()
    await source.open()
    store = PostgresEventStore(projected.dsn)
    await store.open()
    core = Core(store)
    await core.start("late-core")
    try:
        runner = ProjectionRunner(storage, all_projectors())
        task = asyncio.create_task(runner.run(source))
        await asyncio.sleep(0.5)  # the runner is idle, waiting
        result = await core.submit(f.deposit(f.ALICE, f.USD, "5.00"))
        async with asyncio.timeout(5):
            while min((await runner.positions()).values()) < result.positions[-1]:
                await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await core.stop()
        await store.close()
        await source.close()
        await storage.close()
