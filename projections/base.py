"""What every projector shares: the event envelope, the transaction port, instrument units.

Projectors know SQL (they own the read-model schemas) but not the driver: they talk to a
`Tx`, which the storage in `infra/` provides (an asyncpg connection inside a transaction).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, Protocol

from domain.events import AlertCondition, Event, InstrumentListed
from domain.values import (
    CancelReason,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    atom,
)


class Envelope(NamedTuple):
    """One committed event with its global log position.

    A named tuple rather than a frozen dataclass: one is made per event read (a rebuild
    makes a million), and a frozen dataclass's `__init__` costs three times as much."""

    position: int
    event_id: str | None  # None when read for a rebuild (no projector needs it)
    event: Event
    recorded_at_us: int | None = None  # commit time (database clock), for lag measurement


class Tx(Protocol):
    """A database transaction a projector writes through (asyncpg's Connection fits)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


# Bulk writes: one `INSERT ... SELECT ... FROM unnest(...)` per table and batch. Each column
# travels as ONE text parameter, its values joined by a unit separator and split by the
# server (`string_to_array`): asyncpg's per-element array encoding costs more than the rest of
# a projector's work. Numerics travel as their exact decimal text, times as integer
# microseconds since the epoch (exact, and no datetime objects); the server converts both.
TEXT, BIGINT, INTEGER, BOOLEAN, NUMERIC, TIME = "text", "bigint", "integer", "boolean", "n", "t"
SEPARATOR, NULL = "\x1f", "\x1e"
_SQL_TYPE = {TEXT: "text", BIGINT: "bigint", INTEGER: "integer", BOOLEAN: "boolean",
             NUMERIC: "numeric", TIME: "bigint"}  # fmt: skip

Columns = Sequence[tuple[str, str]]  # (column, kind) in row order


def insert_sql(table: str, columns: Columns, tail: str = "") -> str:
    """An INSERT of whole batches (see `insert_rows`); `tail` is e.g. an ON CONFLICT clause."""
    return numbered(insert_template(table, columns, tail))


def insert_template(table: str, columns: Columns, tail: str = "") -> str:
    """`insert_sql` with relative parameters (`$@1`...), for `write_all`."""
    names = ", ".join(name for name, _ in columns)
    return f"INSERT INTO {table} ({names}) {_unnested(columns)} {tail}"


def update_template(table: str, key: str, columns: Columns) -> str:
    """An UPDATE of whole batches of existing rows, matched on `key` (the first column),
    with the same parameters as `insert_template`: cheaper than an upsert for rows known to
    exist (no speculative insertion into the unique index)."""
    sets = ", ".join(f"{name} = u.{name}" for name, _ in columns if name != key)
    return (
        f"UPDATE {table} AS t SET {sets} FROM ({_unnested(columns)}) AS u WHERE t.{key} = u.{key}"
    )


def _unnested(columns: Columns) -> str:
    """The rows of a batch as a SELECT: each column one text parameter (`$@n`), split by the
    server and cast; times converted from integer microseconds."""
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(
        f"timestamptz 'epoch' + {name} * interval '1 microsecond' AS {name}"
        if kind == TIME
        else name
        for name, kind in columns
    )
    arrays = ", ".join(
        f"(string_to_array(chr(31) || $@{i}, chr(31), chr(30)))[2:]::{_SQL_TYPE[kind]}[]"
        for i, (_, kind) in enumerate(columns, 1)
    )
    return f"SELECT {values} FROM unnest({arrays}) AS u({names})"


_RELATIVE = re.compile(r"\$@(\d+)")


def numbered(template: str, offset: int = 0) -> str:
    """A template's relative parameters `$@n` as the statement's `$(n + offset)`."""
    return _RELATIVE.sub(lambda m: f"${int(m.group(1)) + offset}", template)


@functools.lru_cache(maxsize=256)
def combined(templates: tuple[str, ...]) -> str:
    """One statement running several independent writes: all but the last as data-modifying
    CTEs (`WITH w0 AS (INSERT ...), ... INSERT ...`). They run on one snapshot, so they must
    touch different rows (or tables); the point is one round trip instead of one each."""
    parts, offset = [], 0
    for template in templates:
        parts.append(numbered(template, offset))
        offset += max((int(n) for n in _RELATIVE.findall(template)), default=0)
    if len(parts) == 1:
        return parts[0]
    ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}"


Write = tuple[str, list[Any]]  # a template (relative parameters) and its parameters


def rows_write(template: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> Write | None:
    """The write of `rows` by an `insert_template` (None when there are none)."""
    if not rows:
        return None
    values = list(zip(*rows, strict=True))
    return template, [_joined(kind, list(values[i])) for i, (_, kind) in enumerate(columns)]


async def write_all(tx: Tx, writes: Iterable[Write | None]) -> None:
    """Run the (non-None) writes as one statement (see `combined`)."""
    present = [w for w in writes if w is not None]
    if present:
        sql = combined(tuple(template for template, _ in present))
        await tx.execute(sql, *[arg for _, args in present for arg in args])


def _joined(kind: str, values: list[Any]) -> str:
    if kind == TEXT:
        text = SEPARATOR.join([NULL if v is None else v for v in values])
        if text.count(SEPARATOR) != len(values) - 1 or text.count(NULL) != values.count(None):
            # a value holding a separator would shift every value after it
            raise ValueError("a text value holds the control character \\x1e or \\x1f")
        return text
    if kind == NUMERIC:
        return SEPARATOR.join([NULL if v is None else str(v) for v in values])
    if kind == TIME:
        return SEPARATOR.join([str(v // 1000) for v in values])
    if kind == BOOLEAN:
        return SEPARATOR.join(["t" if v else "f" for v in values])
    return SEPARATOR.join(map(str, values))


def delete_write(table: str, column: str, keys: Collection[str]) -> Write | None:
    """A write deleting the rows whose text `column` is one of `keys` (None when none)."""
    if not keys:
        return None
    return f"DELETE FROM {table} WHERE {column} = ANY($@1::text[])", [list(keys)]


CACHE_LIMIT = 200_000  # rows a projector keeps in memory between batches, at most


# The text of an enum member by dict lookup: `member.value` goes through an enum property,
# which costs several times more, once per event and column.
VALUE: dict[StrEnum, str] = {
    m: m.value
    for kind in (Side, OrderType, TimeInForce, SelfTradePrevention, Reason, CancelReason,
                 AlertCondition)
    for m in kind
}  # fmt: skip


async def insert_rows(tx: Tx, sql: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> None:
    """Run `insert_sql` for `rows`: Decimals (or None) for NUMERIC, nanoseconds for TIME."""
    if not rows:
        return
    values = list(zip(*rows, strict=True))
    await tx.execute(sql, *(_joined(kind, list(values[i])) for i, (_, kind) in enumerate(columns)))


def ns_to_datetime(ns: int) -> datetime:
    """UTC datetime of a nanosecond timestamp, truncated to the microsecond (timestamptz)."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


@dataclass(frozen=True, slots=True)
class Units:
    """An instrument's units: ticks, lots and atoms to Decimal prices, quantities, amounts."""

    symbol: str
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    maker_fee_bps: int
    taker_fee_bps: int
    quote_atom: Decimal = field(init=False, repr=False, compare=False)
    base_atom: Decimal = field(init=False, repr=False, compare=False)
    # computed once: projectors use them per trade
    quote_atoms_per_tick_lot: int = field(init=False, repr=False, compare=False)
    base_atoms_per_lot: int = field(init=False, repr=False, compare=False)
    worst_fee_bps: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "quote_atom", atom(self.quote_decimals))
        set_(self, "base_atom", atom(self.base_decimals))
        per_tick_lot = int(self.tick_size * self.lot_size / self.quote_atom)
        set_(self, "quote_atoms_per_tick_lot", per_tick_lot)
        set_(self, "base_atoms_per_lot", int(self.lot_size / self.base_atom))
        set_(self, "worst_fee_bps", max(self.maker_fee_bps, self.taker_fee_bps))

    def price(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def qty(self, lots: int) -> Decimal:
        return self.lot_size * lots

    def quote_amount(self, atoms: int) -> Decimal:
        return self.quote_atom * atoms

    def base_amount(self, atoms: int) -> Decimal:
        return self.base_atom * atoms

    def amount(self, asset: str, atoms: int) -> Decimal:
        return self.base_amount(atoms) if asset == self.base else self.quote_amount(atoms)

    def buy_unit_cost(self, price_ticks: int) -> int:
        """Quote atoms a buy reserves per lot at ``price_ticks``: price plus the worst fee."""
        one_lot = price_ticks * self.quote_atoms_per_tick_lot
        return one_lot + -((-one_lot * self.worst_fee_bps) // 10_000)


class Projector(ABC):
    """Builds read-model tables from events, a batch at a time, inside the runner's transaction.

    A batch is applied in three steps, so that its cost is a few statements rather than a few
    per event: `prepare` reads, in bulk, the stored rows the batch's events refer to;
    `project` folds each event into memory (no I/O); `flush` writes everything with COPY or
    multi-row upserts, once, before the runner records the position. `reset` forgets the
    batch after a failed transaction.

    `tables` are the rows this projector owns: a rebuild empties exactly these. Projectors
    never read the clock: every timestamp in their rows comes from the events.

    A projector may keep rows it wrote in memory after `flush` (open orders, positions), to
    skip reading them again with the next batch: they equal the stored rows once the
    transaction commits, and the runner calls `reset` whenever that may not hold (a failed
    transaction, or a stored position this runner did not write).
    """

    name: str
    tables: tuple[str, ...]
    # The event types `project` acts on (None: all); the others are not even handed to it.
    handles: ClassVar[frozenset[type[Event]] | None] = None

    def __init__(self) -> None:
        self._units: dict[str, Units] = {}

    async def apply_batch(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:
        """Fold a gap-free run of events into the batch; `flush` writes it."""
        listed = listings(envelopes)
        for event in listed:
            await remember_instrument(tx, event)
        if listed or not self._units:
            await self.load_units(tx)
        handles = self.handles
        if handles is not None:
            envelopes = [e for e in envelopes if type(e.event) in handles]
        await self.prepare(tx, envelopes)
        project = self.project
        for envelope in envelopes:
            project(envelope)

    async def apply(self, tx: Tx, envelope: Envelope) -> None:
        """One event (the batch of one)."""
        await self.apply_batch(tx, (envelope,))

    async def prepare(self, tx: Tx, envelopes: Sequence[Envelope]) -> None:  # noqa: B027
        """Load, in bulk, the stored rows `project` will need for these events."""

    @abstractmethod
    def project(self, envelope: Envelope) -> None:
        """Fold one event into the batch's in-memory state (no I/O)."""

    async def flush(self, tx: Tx) -> None:  # noqa: B027 - projectors without batch state
        """Write what the batch accumulated in memory; called once before the position."""

    def reset(self) -> None:  # noqa: B027
        """Forget batch state (after a failed transaction)."""

    async def load_units(self, tx: Tx) -> None:
        """Every listed instrument's units (listings never change, so they stay cached)."""
        for row in await tx.fetch(
            "SELECT symbol, base, quote, base_decimals, quote_decimals, tick_size, lot_size, "
            "maker_fee_bps, taker_fee_bps FROM instruments"
        ):
            self._units[row[0]] = Units(*row)

    def unit(self, symbol: str) -> Units:
        """The units of a symbol `prepare` loaded."""
        try:
            return self._units[symbol]
        except KeyError:
            raise LookupError(f"{self.name}: no InstrumentListed seen for {symbol!r}") from None

    async def units(self, tx: Tx, symbol: str) -> Units:
        cached = self._units.get(symbol)
        if cached is not None:
            return cached
        row = await tx.fetchrow(
            "SELECT symbol, base, quote, base_decimals, quote_decimals, tick_size, lot_size, "
            "maker_fee_bps, taker_fee_bps FROM instruments WHERE symbol = $1",
            symbol,
        )
        if row is None:
            raise LookupError(f"{self.name}: no InstrumentListed seen for {symbol!r}")
        units = Units(*row)
        self._units[symbol] = units
        return units


_LISTINGS: dict[int, tuple[Sequence[Envelope], int, tuple[InstrumentListed, ...]]] = {}


def listings(batch: Sequence[Envelope]) -> tuple[InstrumentListed, ...]:
    """The listings in `batch`. Every projector asks about the same batches (the runner hands
    them shared sequences, and a rebuild's projectors are at most a few batches apart), so
    the answers for the last few batches are kept: one scan a batch, not one per projector."""
    known = _LISTINGS.get(id(batch))
    if known is not None and known[0] is batch and known[1] == len(batch):
        return known[2]
    found = tuple(e.event for e in batch if type(e.event) is InstrumentListed)
    if len(_LISTINGS) >= 8:
        del _LISTINGS[next(iter(_LISTINGS))]  # the oldest
    _LISTINGS[id(batch)] = (batch, len(batch), found)
    return found


async def remember_instrument(tx: Tx, event: InstrumentListed) -> None:
    """Every projector records listings itself, so none depends on another's progress."""
    await tx.execute(
        """
        INSERT INTO instruments (symbol, base, quote, base_decimals, quote_decimals, tick_size,
            lot_size, min_qty, max_qty, reference_price, maker_fee_bps, taker_fee_bps, listed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (symbol) DO NOTHING
        """,
        event.symbol,
        event.base,
        event.quote,
        event.base_decimals,
        event.quote_decimals,
        event.tick_size,
        event.lot_size,
        event.min_qty,
        event.max_qty,
        event.reference_price,
        event.maker_fee_bps,
        event.taker_fee_bps,
        ns_to_datetime(event.timestamp_ns),
    )


async def asset_decimals(tx: Tx, asset: str) -> int:
    """Decimals of an asset, as fixed by the first listing that names it."""
    value = await tx.fetchval(
        "SELECT base_decimals FROM instruments WHERE base = $1 UNION ALL "
        "SELECT quote_decimals FROM instruments WHERE quote = $1 LIMIT 1",
        asset,
    )
    if value is None:
        raise LookupError(f"no listing names the asset {asset!r}")
    return int(value)
