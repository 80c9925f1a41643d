"""The runner's remembered positions: a batch is built on the position this runner committed,
and applied again from the stored one when another process moved it meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from domain.events import AccountOpened, Event, FundsDeposited
from projections.base import Envelope, Projector
from projections.runner import ADVANCE, ProjectionRunner


def deposit(position: int) -> Envelope:
    event = FundsDeposited(command_id=f"c{position}", correlation_id=f"c{position}",
                           timestamp_ns=position * 1_000_000_000, account_id="alice",
                           asset="USD", amount_atoms=100)  # fmt: skip
    return Envelope(position, f"e{position}", event)


def opened(position: int) -> Envelope:
    event: Event = AccountOpened(
        command_id=f"c{position}",
        correlation_id=f"c{position}",
        timestamp_ns=position * 1_000_000_000,
        account_id="bob",
    )
    return Envelope(position, f"e{position}", event)


class Storage:
    """Positions and written rows; a transaction's changes land only when it commits."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.rows: list[int] = []
        self.transactions = 0
        self.autocommits = 0
        self.scripts = 0  # deferred batches: writes and position in one script

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        self.transactions += 1
        tx = Tx(self)
        yield tx
        self.positions.update(tx.positions)
        self.rows += tx.rows

    async def execute(self, query: str, *args: Any) -> str:
        self.autocommits += 1
        tx = Tx(self)
        status = await tx.execute(query, *args)
        self.positions.update(tx.positions)
        return status

    @asynccontextmanager
    async def deferred(self) -> AsyncIterator[Deferred]:
        self.scripts += 1
        yield Deferred(self)


class Tx:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.positions: dict[str, int] = {}
        self.rows: list[int] = []

    async def execute(self, query: str, *args: Any) -> str:
        if query == ADVANCE:
            name, position, _, expected = args
            if self.storage.positions.get(name, 0) != expected:
                return "UPDATE 0"
            self.positions[name] = position
            return "UPDATE 1"
        assert query == "WRITE"
        self.rows += args[0]
        return "INSERT"

    async def executemany(self, command: str, args: Any) -> None:
        raise NotImplementedError

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        return []  # no instruments

    async def fetchrow(self, query: str, *args: Any) -> Any:
        raise NotImplementedError

    async def fetchval(self, query: str, *args: Any) -> Any:
        return self.storage.positions.setdefault(args[0], 0)  # the locked position read


class Deferred(Tx):
    """Writes held until `commit`, which lands them only if the position is `after`."""

    async def commit(self, name: str, after: int, to: int, event_at: Any) -> bool:
        if self.storage.positions.get(name, 0) != after:
            return False
        self.storage.positions[name] = to
        self.storage.rows += self.rows
        return True


class Deposits(Projector):
    name = "deposits"
    tables = ()
    handles = frozenset({FundsDeposited})

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[int] = []

    def project(self, envelope: Envelope) -> None:
        self.pending.append(envelope.position)

    async def flush(self, tx: Any) -> None:
        await tx.execute("WRITE", self.pending)
        self.pending = []

    def reset(self) -> None:
        self.pending = []


async def apply(runner: ProjectionRunner, batch: Sequence[Envelope]) -> None:
    await runner.apply(batch)


async def test_a_batch_is_applied_again_from_the_stored_position_when_it_moved() -> None:
    storage = Storage()
    runner = ProjectionRunner(storage, [Deposits()])  # type: ignore[arg-type]
    await apply(runner, [deposit(1), deposit(2), deposit(3)])
    # Another runner applied 4..6 meanwhile: this one's remembered position (3) is stale.
    storage.positions["deposits"], storage.rows = 6, [*storage.rows, 4, 5, 6]
    await apply(runner, [deposit(4), deposit(5), deposit(6), deposit(7)])
    assert storage.positions["deposits"] == 7
    assert storage.rows == [1, 2, 3, 4, 5, 6, 7]  # 4..6 once, not twice


async def test_after_the_first_batch_a_batch_is_one_script_not_a_transaction() -> None:
    storage = Storage()
    runner = ProjectionRunner(storage, [Deposits()])  # type: ignore[arg-type]
    await apply(runner, [deposit(1)])  # the first reads (and locks) the stored position
    assert (storage.transactions, storage.scripts) == (1, 0)
    await apply(runner, [deposit(2), deposit(3)])
    await apply(runner, [deposit(4)])
    assert (storage.transactions, storage.scripts) == (1, 2)
    assert storage.rows == [1, 2, 3, 4] and storage.positions["deposits"] == 4


async def test_a_batch_with_nothing_for_a_projector_only_moves_its_position_in_one_statement() -> (
    None
):
    storage = Storage()
    runner = ProjectionRunner(storage, [Deposits()])  # type: ignore[arg-type]
    await apply(runner, [deposit(1)])
    before = storage.transactions
    await apply(runner, [opened(2), opened(3)])
    assert storage.positions["deposits"] == 3
    assert (storage.transactions, storage.autocommits) == (before, 1)
    assert storage.rows == [1]
