"""24-hour market statistics per symbol, from per-minute aggregates.

The window is the 1,440 minutes ending with the minute of the symbol's latest trade (event
time, not the wall clock, so a rebuild gives the same row): open, high, low, last, change,
volume, quote volume and trade count over that window. A batch's trades are folded per
minute in memory and merged into the stored minutes with one upsert.
"""

from __future__ import annotations

from datetime import timedelta

from domain.events import TradeExecuted
from projections.base import (
    BIGINT,
    NUMERIC,
    TEXT,
    TIME,
    Envelope,
    Projector,
    Tx,
    insert_rows,
    insert_sql,
    ns_to_datetime,
)
from projections.candles import Part, add_trade, candle_of

MINUTE = 60_000_000_000
COLUMNS = (
    ("symbol", TEXT), ("minute", TIME), ("open", NUMERIC), ("high", NUMERIC), ("low", NUMERIC),
    ("close", NUMERIC), ("volume", NUMERIC), ("quote_volume", NUMERIC), ("trade_count", BIGINT),
)  # fmt: skip
UPSERT = insert_sql(
    "market_stats_minutes",
    COLUMNS,
    """ON CONFLICT (symbol, minute) DO UPDATE SET
        high = GREATEST(market_stats_minutes.high, EXCLUDED.high),
        low = LEAST(market_stats_minutes.low, EXCLUDED.low),
        close = EXCLUDED.close,
        volume = market_stats_minutes.volume + EXCLUDED.volume,
        quote_volume = market_stats_minutes.quote_volume + EXCLUDED.quote_volume,
        trade_count = market_stats_minutes.trade_count + EXCLUDED.trade_count""",
)


class MarketStatsProjector(Projector):
    name = "market_stats"
    tables = ("market_stats_minutes", "market_stats_24h")
    handles = frozenset({TradeExecuted})

    def __init__(self) -> None:
        super().__init__()
        self._touched: dict[str, int] = {}  # symbol -> latest minute seen in this batch (ns)
        # (symbol, minute ns) -> the batch's part, in integer units (see projections.candles)
        self._minutes: dict[tuple[str, int], Part] = {}

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is not TradeExecuted:
            return
        self.unit(event.symbol)  # a trade of an unlisted symbol stops the batch here
        minute = event.timestamp_ns - event.timestamp_ns % MINUTE
        add_trade(self._minutes, (event.symbol, minute), event)
        latest = self._touched.get(event.symbol)
        if latest is None or minute > latest:
            self._touched[event.symbol] = minute

    async def flush(self, tx: Tx) -> None:
        if self._minutes:
            # Merged in SQL: the stored minute is older, so its open stays and the batch's
            # close wins; sums add up. One statement for the whole batch.
            rows = []
            for k, part in self._minutes.items():
                p = candle_of(part, self.unit(k[0]))
                rows.append((*k, p.open, p.high, p.low, p.close, p.volume, p.quote_volume,
                             p.trade_count))  # fmt: skip
            await insert_rows(tx, UPSERT, COLUMNS, rows)
            self._minutes = {}
        if self._touched:
            # Every touched symbol's window in one statement.
            symbols = list(self._touched)
            ends = [ns_to_datetime(self._touched[symbol]) for symbol in symbols]
            starts = [end - timedelta(minutes=1439) for end in ends]
            await tx.execute(
                """
                INSERT INTO market_stats_24h (symbol, window_start, window_end, open, high, low,
                    last, change, volume, quote_volume, trade_count)
                SELECT k.symbol, k.window_start, k.window_end, o, h, l, c, c - o, v, qv, n
                FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
                    AS k(symbol, window_start, window_end)
                CROSS JOIN LATERAL (
                    SELECT (array_agg(open ORDER BY minute))[1] AS o, max(high) AS h,
                           min(low) AS l, (array_agg(close ORDER BY minute DESC))[1] AS c,
                           sum(volume) AS v, sum(quote_volume) AS qv, sum(trade_count) AS n
                    FROM market_stats_minutes m
                    WHERE m.symbol = k.symbol AND m.minute BETWEEN k.window_start AND k.window_end
                ) w
                ON CONFLICT (symbol) DO UPDATE SET window_start = EXCLUDED.window_start,
                    window_end = EXCLUDED.window_end, open = EXCLUDED.open,
                    high = EXCLUDED.high, low = EXCLUDED.low, last = EXCLUDED.last,
                    change = EXCLUDED.change, volume = EXCLUDED.volume,
                    quote_volume = EXCLUDED.quote_volume, trade_count = EXCLUDED.trade_count
                """,
                symbols,
                starts,
                ends,
            )
        self._touched.clear()

    def reset(self) -> None:
        self._touched.clear()
        self._minutes = {}
