"""Candles (OHLC, volume, quote volume, VWAP, trade count) per symbol and interval.

Maintained incrementally: a batch's trades are folded in memory per (symbol, interval,
bucket), then merged with the stored candles in one read and one multi-row upsert. Buckets
are aligned to the Unix epoch in UTC (so 1d candles start at midnight UTC) and computed from
the event time in integer nanoseconds. VWAP is `quote_volume / volume` rounded half-even to
12 places.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

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
)

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
WIDE = Context(prec=80)

COLUMNS = (
    ("symbol", TEXT), ("interval", TEXT), ("bucket", TIME), ("open", NUMERIC),
    ("high", NUMERIC), ("low", NUMERIC), ("close", NUMERIC), ("volume", NUMERIC),
    ("quote_volume", NUMERIC), ("vwap", NUMERIC), ("trade_count", BIGINT),
    ("first_trade_id", BIGINT), ("last_trade_id", BIGINT),
)  # fmt: skip
UPSERT = insert_sql(
    "candles",
    COLUMNS,
    "ON CONFLICT (symbol, interval, bucket) DO UPDATE SET high = EXCLUDED.high, "
    "low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
    "quote_volume = EXCLUDED.quote_volume, vwap = EXCLUDED.vwap, "
    "trade_count = EXCLUDED.trade_count, last_trade_id = EXCLUDED.last_trade_id",
)


def vwap(quote_volume: Decimal, volume: Decimal) -> Decimal:
    return WIDE.divide(quote_volume, volume).quantize(VWAP_PLACES, ROUND_HALF_EVEN, WIDE)


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

    @classmethod
    def of_trade(
        cls, price: Decimal, volume: Decimal, quote_volume: Decimal, trade_id: int
    ) -> Candle:
        """The candle of a bucket's first trade."""
        return cls(price, price, price, price, volume, quote_volume, 1, trade_id, trade_id)

    def add_trade(
        self, price: Decimal, volume: Decimal, quote_volume: Decimal, trade_id: int
    ) -> None:
        """Fold in a later trade of the same bucket."""
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += volume
        self.quote_volume += quote_volume
        self.trade_count += 1
        self.last_trade_id = trade_id

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

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is not TradeExecuted:
            return
        u = self.unit(event.symbol)
        price = u.price(event.price_ticks)
        volume = u.qty(event.qty_lots)
        quote_volume = u.quote_amount(event.notional_atoms)
        pending = self._pending
        ns = event.timestamp_ns
        for interval, width in INTERVALS.items():
            key = (event.symbol, interval, ns - ns % width)
            candle = pending.get(key)
            if candle is None:
                pending[key] = Candle.of_trade(price, volume, quote_volume, event.trade_id)
            else:
                candle.add_trade(price, volume, quote_volume, event.trade_id)

    async def flush(self, tx: Tx) -> None:
        """Merge the batch's candles with the stored ones (one read), write them (one upsert)."""
        if not self._pending:
            return
        keys = list(self._pending)
        stored = await tx.fetch(
            """
            SELECT c.symbol, c.interval, k.bucket_us, c.open, c.high, c.low, c.close, c.volume,
                   c.quote_volume, c.trade_count, c.first_trade_id, c.last_trade_id
            FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(symbol, interval, bucket_us)
            JOIN candles c ON c.symbol = k.symbol AND c.interval = k.interval
                AND c.bucket = timestamptz 'epoch' + k.bucket_us * interval '1 microsecond'
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] // 1000 for k in keys],
        )
        merged = self._pending
        for row in stored:
            key = (row[0], row[1], int(row[2]) * 1000)
            candle = Candle(*row[3:])
            candle.merge(merged[key])
            merged[key] = candle
        rows = []
        for key in keys:
            c = merged[key]
            rows.append(
                (*key, c.open, c.high, c.low, c.close, c.volume, c.quote_volume,
                 vwap(c.quote_volume, c.volume), c.trade_count, c.first_trade_id,
                 c.last_trade_id)
            )  # fmt: skip
        await insert_rows(tx, UPSERT, COLUMNS, rows)
        self._pending = {}

    def reset(self) -> None:
        self._pending = {}
