"""What every projector shares: the event envelope, the transaction port, instrument units.

Projectors know SQL (they own the read-model schemas) but not the driver: they talk to a
`Tx`, which the storage in `infra/` provides (an asyncpg connection inside a transaction).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from domain.events import Event, InstrumentListed
from domain.values import atom


@dataclass(frozen=True, slots=True)
class Envelope:
    """One committed event with its global log position."""

    position: int
    event_id: str
    event: Event


class Tx(Protocol):
    """A database transaction a projector writes through (asyncpg's Connection fits)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


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

    def price(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def qty(self, lots: int) -> Decimal:
        return self.lot_size * lots

    def quote_amount(self, atoms: int) -> Decimal:
        return atom(self.quote_decimals) * atoms

    def base_amount(self, atoms: int) -> Decimal:
        return atom(self.base_decimals) * atoms

    def amount(self, asset: str, atoms: int) -> Decimal:
        return self.base_amount(atoms) if asset == self.base else self.quote_amount(atoms)

    @property
    def quote_atoms_per_tick_lot(self) -> int:
        return int(self.tick_size * self.lot_size / atom(self.quote_decimals))

    @property
    def base_atoms_per_lot(self) -> int:
        return int(self.lot_size / atom(self.base_decimals))

    def buy_unit_cost(self, price_ticks: int) -> int:
        """Quote atoms a buy reserves per lot at ``price_ticks``: price plus the worst fee."""
        one_lot = price_ticks * self.quote_atoms_per_tick_lot
        worst = max(self.maker_fee_bps, self.taker_fee_bps)
        return one_lot + -((-one_lot * worst) // 10_000)


class Projector(ABC):
    """Builds read-model tables from events. `handle` runs inside the runner's transaction.

    `tables` are the rows this projector owns: a rebuild empties exactly these. Projectors
    never read the clock: every timestamp in their rows comes from the events.
    """

    name: str
    tables: tuple[str, ...]

    def __init__(self) -> None:
        self._units: dict[str, Units] = {}

    async def apply(self, tx: Tx, envelope: Envelope) -> None:
        if isinstance(envelope.event, InstrumentListed):
            await remember_instrument(tx, envelope.event)
        await self.handle(tx, envelope)

    @abstractmethod
    async def handle(self, tx: Tx, envelope: Envelope) -> None: ...

    async def flush(self, tx: Tx) -> None:  # noqa: B027 - most projectors write as they go
        """Write what the batch accumulated in memory; called once before the position."""

    def reset(self) -> None:  # noqa: B027
        """Forget batch state (after a failed transaction)."""

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
