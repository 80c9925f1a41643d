"""Every SQL statement the GraphQL API runs against the read models and the event log.

Each function takes a `Db` (an asyncpg pool or connection fits) and returns asyncpg rows;
the batch functions take many keys at once so the data loaders answer a whole level of a
query with one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.base import Tx

Db = Tx

OPEN_STATUSES = ("new", "open", "partially_filled")

INSTRUMENT_COLUMNS = (
    "symbol, base, quote, base_decimals, quote_decimals, tick_size, lot_size, min_qty, "
    "max_qty, reference_price, maker_fee_bps, taker_fee_bps, listed_at"
)
ORDER_COLUMNS = (
    "order_id, account_id, symbol, client_order_id, side, order_type, time_in_force, "
    "post_only, price, quantity, quote_budget, filled_qty, remaining_qty, filled_notional, "
    "fees, avg_fill_price, status, cancel_reason, created_at, updated_at"
)
TRADE_COLUMNS = (
    "symbol, trade_id, executed_at, executed_at_ns, price, quantity, notional, taker_side, "
    "maker_order_id, taker_order_id, maker_account_id, taker_account_id, maker_fee, "
    "taker_fee, position"
)
CANDLE_COLUMNS = (
    "symbol, interval, bucket, open, high, low, close, volume, quote_volume, vwap, "
    "trade_count, first_trade_id, last_trade_id"
)
STATS_COLUMNS = (
    "symbol, window_start, window_end, open, high, low, last, change, volume, quote_volume, "
    "trade_count"
)
EVENT_COLUMNS = (
    "notification_id, event_id, originator_id, originator_version, event_type, "
    "schema_version, occurred_at, occurred_at_ns, command_id, correlation_id, hash, state"
)


async def instruments(db: Db) -> list[Any]:
    return await db.fetch(f"SELECT {INSTRUMENT_COLUMNS} FROM instruments ORDER BY symbol")


async def instruments_by_symbol(db: Db, symbols: Sequence[str]) -> list[Any]:
    return await db.fetch(
        f"SELECT {INSTRUMENT_COLUMNS} FROM instruments WHERE symbol = ANY($1::text[])",
        list(symbols),
    )


async def known_accounts(db: Db) -> list[str]:
    """Every account the read models know (from balances: an opened account has a deposit
    or it has nothing to show)."""
    rows = await db.fetch("SELECT DISTINCT account_id FROM balances ORDER BY account_id")
    return [str(r["account_id"]) for r in rows]


async def balances_of(db: Db, accounts: Sequence[str]) -> list[Any]:
    return await db.fetch(
        "SELECT account_id, asset, available, reserved FROM balances "
        "WHERE account_id = ANY($1::text[]) ORDER BY account_id, asset",
        list(accounts),
    )


async def positions_of(db: Db, accounts: Sequence[str]) -> list[Any]:
    return await db.fetch(
        "SELECT account_id, symbol, quantity, avg_cost, realized_pnl, fees_paid, last_price, "
        "unrealized_pnl FROM positions_valued WHERE account_id = ANY($1::text[]) "
        "ORDER BY account_id, symbol",
        list(accounts),
    )


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """The arguments of an orders list, shared by every account in one loader batch."""

    open_only: bool = False
    symbol: str | None = None
    limit: int = 100


async def orders_of(db: Db, accounts: Sequence[str], where: OrderFilter) -> list[Any]:
    """Per account, the newest ``where.limit`` orders matching the filter (one statement)."""
    return await db.fetch(
        f"""
        SELECT {ORDER_COLUMNS} FROM (
            SELECT o.*, row_number() OVER (
                PARTITION BY account_id ORDER BY created_at DESC, order_id DESC) AS rank
            FROM orders o
            WHERE account_id = ANY($1::text[])
              AND ($2::boolean IS FALSE OR status = ANY($3::text[]))
              AND ($4::text IS NULL OR symbol = $4)
        ) ranked WHERE rank <= $5
        ORDER BY account_id, created_at DESC, order_id DESC
        """,
        list(accounts),
        where.open_only,
        list(OPEN_STATUSES),
        where.symbol,
        where.limit,
    )


async def orders_by_id(db: Db, order_ids: Sequence[str]) -> list[Any]:
    return await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ANY($1::text[])", list(order_ids)
    )


async def fills_of_orders(db: Db, order_ids: Sequence[str]) -> list[Any]:
    return await db.fetch(
        "SELECT order_id, trade_id, symbol, liquidity, price, quantity, fee, executed_at "
        "FROM order_fills WHERE order_id = ANY($1::text[]) ORDER BY order_id, trade_id",
        list(order_ids),
    )


@dataclass(frozen=True, slots=True)
class FillFilter:
    symbol: str | None = None
    limit: int = 100


async def fills_of_accounts(db: Db, accounts: Sequence[str], where: FillFilter) -> list[Any]:
    """Per account, its newest ``where.limit`` fills (one statement)."""
    return await db.fetch(
        """
        SELECT account_id, order_id, trade_id, symbol, liquidity, price, quantity, fee,
               executed_at FROM (
            SELECT o.account_id, f.*, row_number() OVER (
                PARTITION BY o.account_id ORDER BY f.executed_at DESC, f.trade_id DESC) AS rank
            FROM order_fills f JOIN orders o USING (order_id)
            WHERE o.account_id = ANY($1::text[]) AND ($2::text IS NULL OR f.symbol = $2)
        ) ranked WHERE rank <= $3
        ORDER BY account_id, executed_at DESC, trade_id DESC
        """,
        list(accounts),
        where.symbol,
        where.limit,
    )


async def trades(
    db: Db,
    symbol: str,
    since: datetime | None,
    until: datetime | None,
    before_trade_id: int | None,
    limit: int,
) -> list[Any]:
    """The newest trades first (``before_trade_id`` pages backwards)."""
    return await db.fetch(
        f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = $1 "
        "AND ($2::timestamptz IS NULL OR executed_at >= $2) "
        "AND ($3::timestamptz IS NULL OR executed_at < $3) "
        "AND ($4::bigint IS NULL OR trade_id < $4) "
        "ORDER BY executed_at DESC, trade_id DESC LIMIT $5",
        symbol,
        since,
        until,
        before_trade_id,
        limit,
    )


async def candles(
    db: Db,
    symbol: str,
    interval: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Any]:
    """Bars in ``[since, until)``, oldest first; without ``since`` the latest ``limit``."""
    if since is None:
        return await db.fetch(
            f"SELECT * FROM (SELECT {CANDLE_COLUMNS} FROM candles WHERE symbol = $1 "
            "AND interval = $2 AND ($3::timestamptz IS NULL OR bucket < $3) "
            "ORDER BY bucket DESC LIMIT $4) latest ORDER BY bucket",
            symbol,
            interval,
            until,
            limit,
        )
    return await db.fetch(
        f"SELECT {CANDLE_COLUMNS} FROM candles WHERE symbol = $1 AND interval = $2 "
        "AND bucket >= $3 AND ($4::timestamptz IS NULL OR bucket < $4) "
        "ORDER BY bucket LIMIT $5",
        symbol,
        interval,
        since,
        until,
        limit,
    )


_SERIES_CELLS = (
    "to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"'), "
    "open::text, high::text, low::text, close::text, volume::text, quote_volume::text, "
    "vwap::text, trade_count, first_trade_id, last_trade_id"
)


async def candle_series(
    db: Db,
    symbol: str,
    interval: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> str:
    """The bars of `candles` as one JSON text, built by the database: an array of
    ``[bucket, open, high, low, close, volume, quote_volume, vwap, trade_count, first_trade_id,
    last_trade_id]`` with decimals as strings (numeric's own text: exact, never a float)."""
    value = await db.fetchval(
        f"""
        SELECT coalesce(json_agg(json_build_array({_SERIES_CELLS}) ORDER BY bucket), '[]')::text
        FROM (
            SELECT * FROM candles WHERE symbol = $1 AND interval = $2
              AND ($3::timestamptz IS NULL OR bucket >= $3)
              AND ($4::timestamptz IS NULL OR bucket < $4)
            ORDER BY CASE WHEN $3::timestamptz IS NULL THEN bucket END DESC, bucket
            LIMIT $5
        ) picked
        """,
        symbol,
        interval,
        since,
        until,
        limit,
    )
    return str(value)


async def stats_by_symbol(db: Db, symbols: Sequence[str]) -> list[Any]:
    return await db.fetch(
        f"SELECT {STATS_COLUMNS} FROM market_stats_24h WHERE symbol = ANY($1::text[])",
        list(symbols),
    )


async def all_stats(db: Db) -> list[Any]:
    return await db.fetch(f"SELECT {STATS_COLUMNS} FROM market_stats_24h ORDER BY symbol")


# --- the event log (auditors) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every condition is optional; they combine with AND. Positions are exclusive below
    (``after_position``) and inclusive above (``to_position``); times are ``[since, until)``
    of the command's time (``occurred_at``)."""

    stream_id: str | None = None
    account_id: str | None = None
    symbol: str | None = None
    event_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    after_position: int = 0
    to_position: int | None = None


async def events(db: Db, where: EventFilter, limit: int) -> list[Any]:
    """The committed log in position order. Account and symbol match the payload's
    ``account_id``/``maker_account_id``/``taker_account_id`` and ``symbol`` fields."""
    return await db.fetch(
        f"""
        SELECT {EVENT_COLUMNS} FROM events
        WHERE notification_id > $1
          AND ($2::bigint IS NULL OR notification_id <= $2)
          AND ($3::uuid IS NULL OR originator_id = $3)
          AND (cardinality($4::text[]) = 0 OR event_type = ANY($4::text[]))
          AND ($5::timestamptz IS NULL OR occurred_at >= $5)
          AND ($6::timestamptz IS NULL OR occurred_at < $6)
          AND ($7::text IS NULL OR convert_from(state, 'UTF8')::jsonb ->> 'symbol' = $7)
          AND ($8::text IS NULL OR $8 IN (
                convert_from(state, 'UTF8')::jsonb ->> 'account_id',
                convert_from(state, 'UTF8')::jsonb ->> 'maker_account_id',
                convert_from(state, 'UTF8')::jsonb ->> 'taker_account_id'))
        ORDER BY notification_id
        LIMIT $9
        """,
        where.after_position,
        where.to_position,
        where.stream_id,
        list(where.event_types),
        where.since,
        where.until,
        where.symbol,
        where.account_id,
        limit,
    )


async def last_position_at(db: Db, at: datetime) -> int:
    """The last position whose command time is at or before ``at`` (0: none)."""
    value = await db.fetchval(
        "SELECT coalesce(max(notification_id), 0) FROM events WHERE occurred_at <= $1", at
    )
    return int(value)


async def head_position(db: Db) -> int:
    return int(await db.fetchval("SELECT coalesce(max(notification_id), 0) FROM events"))


async def snapshot_at_or_before(db: Db, position: int) -> Any:
    """The newest core snapshot at or before ``position`` as one JSON row (``to_jsonb``
    names no column, so it reads both the jsonb ``state`` and the later ``state_zlib``)."""
    return await db.fetchrow(
        "SELECT position, to_jsonb(s)::text AS row FROM core_snapshots s WHERE position <= $1 "
        "ORDER BY position DESC LIMIT 1",
        position,
    )


async def event_payloads(db: Db, after: int, upto: int, limit: int) -> list[Any]:
    return await db.fetch(
        "SELECT notification_id, state FROM events WHERE notification_id > $1 "
        "AND notification_id <= $2 ORDER BY notification_id LIMIT $3",
        after,
        upto,
        limit,
    )


ALERT_STATUSES = ("active", "triggered", "canceled")


async def alerts_of(
    db: Db, accounts: Sequence[str], status: str | None, symbol: str | None, limit: int
) -> list[Any]:
    """The accounts' alerts, newest first (at most ``limit``)."""
    return await db.fetch(
        """
        SELECT * FROM alerts
        WHERE account_id = ANY($1::text[])
          AND ($2::text IS NULL OR status = $2)
          AND ($3::text IS NULL OR symbol = $3)
        ORDER BY created_position DESC LIMIT $4
        """,
        list(accounts),
        status,
        symbol,
        limit,
    )
