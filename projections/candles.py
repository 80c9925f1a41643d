"""Candles (OHLC, volume, quote volume, VWAP, trade count) per symbol and interval.

Maintained incrementally: a batch's trades are folded in memory per (symbol, interval,
bucket), then merged with the stored candles in one read and one write. Buckets are aligned
to the Unix epoch in UTC (so 1d candles start at midnight UTC) and computed from the event
time in integer nanoseconds. VWAP is `quote_volume / volume` rounded half-even to 12 places.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from domain.events import TradeExecuted
from projections.base import Envelope, Projector, Tx, ns_to_datetime

SECOND = 1_000_000_000
INTERVALS: dict[str, int] = {
    "1s": SECOND,
    "1m": 60 * SECOND,
    "5m": 300 * SECOND,
    "15m": 900 * SECOND,
    "1h": 3600 * SECOND,
    "1d": 86_400 * SECOND,
}
VWAP_PLACES = Decimal("1e-12")


def vwap(quote_volume: Decimal, volume: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (quote_volume / volume).quantize(VWAP_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass(slots=True)
class Candle:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    first_trade_id: int
    last_trade_id: int

    def merge(self, later: Candle) -> None:
        """Fold in a candle of the same bucket made of later trades."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote_volume += later.quote_volume
        self.trade_count += later.trade_count
        self.last_trade_id = later.last_trade_id


Key = tuple[str, str, int]  # symbol, interval, bucket start in ns


class CandlesProjector(Projector):
    name = "candles"
    tables = ("candles",)

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[Key, Candle] = {}

    async def handle(self, tx: Tx, envelope: Envelope) -> None:
        event = envelope.event
        if not isinstance(event, TradeExecuted):
            return
        u = await self.units(tx, event.symbol)
        price = u.price(event.price_ticks)
        trade = Candle(
            open=price,
            high=price,
            low=price,
            close=price,
            volume=u.qty(event.qty_lots),
            quote_volume=u.quote_amount(event.notional_atoms),
            trade_count=1,
            first_trade_id=event.trade_id,
            last_trade_id=event.trade_id,
        )
        for interval, width in INTERVALS.items():
            key = (event.symbol, interval, event.timestamp_ns - event.timestamp_ns % width)
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = replace(trade)
            else:
                pending.merge(trade)

    async def flush(self, tx: Tx) -> None:
        if not self._pending:
            return
        keys = list(self._pending)
        stored = await tx.fetch(
            """
            SELECT c.symbol, c.interval, k.bucket_ns, c.open, c.high, c.low, c.close, c.volume,
                   c.quote_volume, c.trade_count, c.first_trade_id, c.last_trade_id
            FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[])
                 AS k(symbol, interval, bucket, bucket_ns)
            JOIN candles c USING (symbol, interval, bucket)
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [ns_to_datetime(k[2]) for k in keys],
            [k[2] for k in keys],
        )
        merged = dict(self._pending)
        for row in stored:
            key = (row[0], row[1], int(row[2]))
            candle = Candle(*row[3:])
            candle.merge(merged[key])
            merged[key] = candle
        await tx.executemany(
            """
            INSERT INTO candles (symbol, interval, bucket, open, high, low, close, volume,
                quote_volume, vwap, trade_count, first_trade_id, last_trade_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (symbol, interval, bucket) DO UPDATE SET
                high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
                vwap = EXCLUDED.vwap, trade_count = EXCLUDED.trade_count,
                last_trade_id = EXCLUDED.last_trade_id
            """,
            [
                (
                    symbol, interval, ns_to_datetime(bucket), c.open, c.high, c.low, c.close,
                    c.volume, c.quote_volume, vwap(c.quote_volume, c.volume), c.trade_count,
                    c.first_trade_id, c.last_trade_id,
                )
                for (symbol, interval, bucket), c in merged.items()
            ],
        )  # fmt: skip
        self._pending.clear()

    def reset(self) -> None:
        self._pending.clear()
