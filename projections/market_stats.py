"""24-hour market statistics per symbol, from per-minute aggregates.

The window is the 1,440 minutes ending with the minute of the symbol's latest trade (event
time, not the wall clock, so a rebuild gives the same row): open, high, low, last, change,
volume, quote volume and trade count over that window.
"""

from __future__ import annotations

from datetime import timedelta

from domain.events import TradeExecuted
from projections.base import Envelope, Projector, Tx, ns_to_datetime

MINUTE = 60_000_000_000


class MarketStatsProjector(Projector):
    name = "market_stats"
    tables = ("market_stats_minutes", "market_stats_24h")

    def __init__(self) -> None:
        super().__init__()
        self._touched: dict[str, int] = {}  # symbol -> latest minute seen in this batch (ns)

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        if not isinstance(event, TradeExecuted):
            return
        u = await self.units(tx, event.symbol)
        price = u.price(event.price_ticks)
        minute = event.timestamp_ns - event.timestamp_ns % MINUTE
        await tx.execute(
            """
            INSERT INTO market_stats_minutes (symbol, minute, open, high, low, close, volume,
                quote_volume, trade_count) VALUES ($1, $2, $3, $3, $3, $3, $4, $5, 1)
            ON CONFLICT (symbol, minute) DO UPDATE SET
                high = GREATEST(market_stats_minutes.high, EXCLUDED.high),
                low = LEAST(market_stats_minutes.low, EXCLUDED.low),
                close = EXCLUDED.close,
                volume = market_stats_minutes.volume + EXCLUDED.volume,
                quote_volume = market_stats_minutes.quote_volume + EXCLUDED.quote_volume,
                trade_count = market_stats_minutes.trade_count + 1
            """,
            event.symbol,
            ns_to_datetime(minute),
            price,
            u.qty(event.qty_lots),
            u.quote_amount(event.notional_atoms),
        )
        self._touched[event.symbol] = max(minute, self._touched.get(event.symbol, minute))

    async def flush(self, tx: Tx) -> None:
        for symbol, minute_ns in self._touched.items():
            end = ns_to_datetime(minute_ns)
            start = end - timedelta(minutes=1439)
            await tx.execute(
                """
                INSERT INTO market_stats_24h (symbol, window_start, window_end, open, high, low,
                    last, change, volume, quote_volume, trade_count)
                SELECT $1, $2, $3, o, h, l, c, c - o, v, qv, n FROM (
                    SELECT (array_agg(open ORDER BY minute))[1] AS o, max(high) AS h,
                           min(low) AS l, (array_agg(close ORDER BY minute DESC))[1] AS c,
                           sum(volume) AS v, sum(quote_volume) AS qv, sum(trade_count) AS n
                    FROM market_stats_minutes
                    WHERE symbol = $1 AND minute BETWEEN $2 AND $3
                ) w
                ON CONFLICT (symbol) DO UPDATE SET window_start = EXCLUDED.window_start,
                    window_end = EXCLUDED.window_end, open = EXCLUDED.open,
                    high = EXCLUDED.high, low = EXCLUDED.low, last = EXCLUDED.last,
                    change = EXCLUDED.change, volume = EXCLUDED.volume,
                    quote_volume = EXCLUDED.quote_volume, trade_count = EXCLUDED.trade_count
                """,
                symbol,
                start,
                end,
            )
        self._touched.clear()

    def reset(self) -> None:
        self._touched.clear()
