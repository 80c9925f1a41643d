"""Replication and read models: the relay's and projectors' positions, the NOTIFY trigger on
`events`, and the read-model tables (trades, candles, portfolios, orders, L2 book, 24h stats).

Money and quantities are NUMERIC (never floats). Time series (trades, candles, per-minute
statistics) are TimescaleDB hypertables when the extension is there; on plain PostgreSQL the
same tables are ordinary tables and a warning says so. No read-model column is filled from
the database clock, so a rebuilt table equals the incrementally built one row for row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import warnings

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, time column, chunk interval)
HYPERTABLES = (
    ("trades", "executed_at", "1 day"),
    ("candles", "bucket", "7 days"),
    ("market_stats_minutes", "minute", "1 day"),
)

TABLES = (
    # The relay: how far the log has been published to Kafka (advanced only after broker ack).
    """
    CREATE TABLE relay_position (
        name          text        PRIMARY KEY,
        position      bigint      NOT NULL DEFAULT 0,
        published_at  timestamptz,
        lag_us        bigint
    )
    """,
    # Each projector's last applied log position, written in the same transaction as its rows.
    """
    CREATE TABLE projection_positions (
        name          text        PRIMARY KEY,
        position      bigint      NOT NULL DEFAULT 0,
        event_at      timestamptz,
        updated_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    # Reference data every projector upserts (idempotently) from InstrumentListed.
    """
    CREATE TABLE instruments (
        symbol          text        PRIMARY KEY,
        base            text        NOT NULL,
        quote           text        NOT NULL,
        base_decimals   integer     NOT NULL,
        quote_decimals  integer     NOT NULL,
        tick_size       numeric     NOT NULL,
        lot_size        numeric     NOT NULL,
        min_qty         numeric     NOT NULL,
        max_qty         numeric     NOT NULL,
        reference_price numeric     NOT NULL,
        maker_fee_bps   integer     NOT NULL,
        taker_fee_bps   integer     NOT NULL,
        listed_at       timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE trades (
        symbol           text        NOT NULL,
        trade_id         bigint      NOT NULL,
        executed_at      timestamptz NOT NULL,
        executed_at_ns   bigint      NOT NULL,
        price            numeric     NOT NULL,
        quantity         numeric     NOT NULL,
        notional         numeric     NOT NULL,
        taker_side       text        NOT NULL,
        maker_order_id   text        NOT NULL,
        taker_order_id   text        NOT NULL,
        maker_account_id text        NOT NULL,
        taker_account_id text        NOT NULL,
        maker_fee        numeric     NOT NULL,
        taker_fee        numeric     NOT NULL,
        position         bigint      NOT NULL,
        PRIMARY KEY (symbol, trade_id, executed_at)
    )
    """,
    """
    CREATE TABLE candles (
        symbol         text        NOT NULL,
        interval       text        NOT NULL,
        bucket         timestamptz NOT NULL,
        open           numeric     NOT NULL,
        high           numeric     NOT NULL,
        low            numeric     NOT NULL,
        close          numeric     NOT NULL,
        volume         numeric     NOT NULL,
        quote_volume   numeric     NOT NULL,
        vwap           numeric     NOT NULL,
        trade_count    bigint      NOT NULL,
        first_trade_id bigint      NOT NULL,
        last_trade_id  bigint      NOT NULL,
        PRIMARY KEY (symbol, interval, bucket)
    )
    """,
    """
    CREATE TABLE balances (
        account_id text    NOT NULL,
        asset      text    NOT NULL,
        available  numeric NOT NULL,
        reserved   numeric NOT NULL,
        PRIMARY KEY (account_id, asset)
    )
    """,
    """
    CREATE TABLE positions (
        account_id   text    NOT NULL,
        symbol       text    NOT NULL,
        quantity     numeric NOT NULL,
        avg_cost     numeric NOT NULL,
        realized_pnl numeric NOT NULL,
        fees_paid    numeric NOT NULL,
        PRIMARY KEY (account_id, symbol)
    )
    """,
    """
    CREATE TABLE last_prices (
        symbol    text        PRIMARY KEY,
        price     numeric     NOT NULL,
        traded_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE venue_fees (
        asset     text    PRIMARY KEY,
        collected numeric NOT NULL
    )
    """,
    # The portfolio projector's working state: what each live order still reserves.
    """
    CREATE TABLE portfolio_orders (
        order_id       text    PRIMARY KEY,
        account_id     text    NOT NULL,
        symbol         text    NOT NULL,
        side           text    NOT NULL,
        price_ticks    bigint  NOT NULL,
        budget         boolean NOT NULL,
        reserved_asset text    NOT NULL,
        reserved_atoms numeric NOT NULL
    )
    """,
    """
    CREATE VIEW positions_valued AS
    SELECT p.account_id, p.symbol, p.quantity, p.avg_cost, p.realized_pnl, p.fees_paid,
           lp.price AS last_price,
           CASE WHEN lp.price IS NULL THEN NULL
                ELSE (lp.price - p.avg_cost) * p.quantity END AS unrealized_pnl
    FROM positions p LEFT JOIN last_prices lp USING (symbol)
    """,
    """
    CREATE TABLE orders (
        order_id        text        PRIMARY KEY,
        account_id      text        NOT NULL,
        symbol          text        NOT NULL,
        client_order_id text        NOT NULL,
        side            text        NOT NULL,
        order_type      text        NOT NULL,
        time_in_force   text        NOT NULL,
        post_only       boolean     NOT NULL,
        price           numeric     NOT NULL,
        quantity        numeric     NOT NULL,
        quote_budget    numeric     NOT NULL,
        filled_qty      numeric     NOT NULL,
        remaining_qty   numeric     NOT NULL,
        filled_notional numeric     NOT NULL,
        fees            numeric     NOT NULL,
        avg_fill_price  numeric,
        status          text        NOT NULL,
        cancel_reason   text,
        created_at      timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL
    )
    """,
    "CREATE INDEX orders_open_idx ON orders (account_id, symbol) "
    "WHERE status IN ('new', 'open', 'partially_filled')",
    """
    CREATE TABLE order_fills (
        order_id    text        NOT NULL,
        trade_id    bigint      NOT NULL,
        symbol      text        NOT NULL,
        liquidity   text        NOT NULL,
        price       numeric     NOT NULL,
        quantity    numeric     NOT NULL,
        fee         numeric     NOT NULL,
        executed_at timestamptz NOT NULL,
        PRIMARY KEY (order_id, trade_id)
    )
    """,
    """
    CREATE TABLE order_rejections (
        position        bigint      PRIMARY KEY,
        order_id        text        NOT NULL,
        account_id      text        NOT NULL,
        symbol          text        NOT NULL,
        client_order_id text        NOT NULL,
        reason          text        NOT NULL,
        rejected_at     timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE book_orders (
        order_id    text   PRIMARY KEY,
        symbol      text   NOT NULL,
        side        text   NOT NULL,
        price_ticks bigint NOT NULL,
        open_lots   bigint NOT NULL
    )
    """,
    """
    CREATE TABLE order_book (
        symbol      text    NOT NULL,
        side        text    NOT NULL,
        price_ticks bigint  NOT NULL,
        price       numeric NOT NULL,
        quantity    numeric NOT NULL,
        order_count integer NOT NULL,
        PRIMARY KEY (symbol, side, price_ticks)
    )
    """,
    """
    CREATE TABLE market_stats_minutes (
        symbol       text        NOT NULL,
        minute       timestamptz NOT NULL,
        open         numeric     NOT NULL,
        high         numeric     NOT NULL,
        low          numeric     NOT NULL,
        close        numeric     NOT NULL,
        volume       numeric     NOT NULL,
        quote_volume numeric     NOT NULL,
        trade_count  bigint      NOT NULL,
        PRIMARY KEY (symbol, minute)
    )
    """,
    """
    CREATE TABLE market_stats_24h (
        symbol       text        PRIMARY KEY,
        window_start timestamptz NOT NULL,
        window_end   timestamptz NOT NULL,
        open         numeric     NOT NULL,
        high         numeric     NOT NULL,
        low          numeric     NOT NULL,
        last         numeric     NOT NULL,
        change       numeric     NOT NULL,
        volume       numeric     NOT NULL,
        quote_volume numeric     NOT NULL,
        trade_count  bigint      NOT NULL
    )
    """,
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in TABLES:
        op.execute(statement)
    timescale = conn.execute(
        text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    ).scalar()
    if timescale:
        for table, column, chunk in HYPERTABLES:
            op.execute(
                f"SELECT create_hypertable('{table}', '{column}', "
                f"chunk_time_interval => INTERVAL '{chunk}')"
            )
    else:
        warnings.warn(
            "TimescaleDB is not installed: trades, candles and market statistics are plain "
            "tables (same schema, no chunking or drop_chunks retention).",
            stacklevel=1,
        )
    # Wake the relay (and event-store projector sources) when events commit: a NOTIFY is
    # delivered at COMMIT, once per statement (the core appends a batch with one COPY).
    op.execute(
        """
        CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('tradecore_events', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS events_notify()")
    op.execute("DROP VIEW IF EXISTS positions_valued")
    for table in (
        "market_stats_24h", "market_stats_minutes", "order_book", "book_orders",
        "order_rejections", "order_fills", "orders", "portfolio_orders", "venue_fees",
        "last_prices", "positions", "balances", "candles", "trades", "instruments",
        "projection_positions", "relay_position",
    ):  # fmt: skip
        op.execute(f"DROP TABLE IF EXISTS {table}")
