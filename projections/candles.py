"""Candles (OHLC, volume, quote volume, VWAP, trade count) per symbol and interval.

Maintained incrementally: a batch's trades are folded in memory per (symbol, interval,
bucket) in integer instrument units (ticks, lots, quote atoms: `Part`), turned into Decimals
once per candle, then merged with the stored candles in one read and one multi-row upsert. Buckets
are aligned to the Unix epoch in UTC (so 1d candles start at midnight UTC) and computed from
the event time in integer nanoseconds. VWAP is `quote_volume / volume` rounded half-even to
12 places.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from domain.events import TradeExecuted
from projections.base import (
    BIGINT,
    NUMERIC,
    TEXT,
    TIME,
    Envelope,
    Projector,
    Tx,
    Units,
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


# A batch's part of a candle in integer units, as a list (cheapest to update in place):
# [open, high, low, close (ticks), volume (lots), quote volume (atoms), trade count,
#  first trade id, last trade id]
Part = list[int]


def add_trade(parts: dict[Any, Part], key: Any, event: TradeExecuted) -> None:
    """Fold one trade into the part at `key` (a later trade of the same bucket)."""
    ticks = event.price_ticks
    part = parts.get(key)
    if part is None:
        parts[key] = [ticks, ticks, ticks, ticks, event.qty_lots, event.notional_atoms, 1,
                      event.trade_id, event.trade_id]  # fmt: skip
        return
    if ticks > part[1]:
        part[1] = ticks
    elif ticks < part[2]:
        part[2] = ticks
    part[3] = ticks
    part[4] += event.qty_lots
    part[5] += event.notional_atoms
    part[6] += 1
    part[8] = event.trade_id


def candle_of(part: Part, u: Units) -> Candle:
    """The Decimal candle of a part: the same values (and exponents) as summing Decimals."""
    tick = u.tick_size
    volume, quote_volume = u.lot_size * part[4], u.quote_atom * part[5]
    return Candle(tick * part[0], tick * part[1], tick * part[2], tick * part[3], volume,
                  quote_volume, part[6], part[7], part[8])  # fmt: skip


Key = tuple[str, str, int]  # symbol, interval, bucket start in ns
WIDTHS = tuple(INTERVALS.items())


class CandlesProjector(Projector):
    name = "candles"
    tables = ("candles",)
    handles = frozenset({TradeExecuted})

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[Key, Part] = {}

    def project(self, envelope: Envelope) -> None:
        event = envelope.event
        if type(event) is not TradeExecuted:
            return
        self.unit(event.symbol)  # a trade of an unlisted symbol stops the batch here
        pending = self._pending
        symbol, ns = event.symbol, event.timestamp_ns
        for interval, width in WIDTHS:
            add_trade(pending, (symbol, interval, ns - ns % width), event)

    async def flush(self, tx: Tx) -> None:
        """Merge the batch's candles with the stored ones (one read), write them (one upsert)."""
        if not self._pending:
            return
        unit = self.unit
        merged = {key: candle_of(part, unit(key[0])) for key, part in self._pending.items()}
        keys = list(merged)
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
