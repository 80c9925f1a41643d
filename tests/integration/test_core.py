"""The live core on the real event store: group commit, ack after COMMIT, restart, rollback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from commands.core import Core, decode_payload
from commands.ports import NewEvent, RecordedEvent, WriterFenced
from domain.commands import Command
from infra.eventstore import PostgresEventStore
from tests.unit.domain import factories as f


def setup_commands() -> list[Command]:
    commands: list[Command] = [f.list_instrument()]
    for account in (f.ALICE, f.BOB):
        commands += [
            f.open_account(account),
            f.deposit(account, f.USD, "10000.00"),
            f.deposit(account, f.ABC, "100"),
        ]
    return commands


@pytest.fixture
async def core(store: PostgresEventStore) -> AsyncIterator[Core]:
    running = Core(store, snapshot_every=10)
    await running.start("test-core")
    for command in setup_commands():
        await running.submit(command)
    yield running
    await running.stop()


async def test_commands_arriving_together_are_committed_in_one_group_in_arrival_order(
    core: Core, store: PostgresEventStore
) -> None:
    commits: list[list[RecordedEvent]] = []
    core.on_commit = commits.append
    orders = [f.sell(f.BOB, "100.00", "1") for _ in range(5)] + [f.buy(f.ALICE, "100.00", "3")]
    results = await asyncio.gather(*(core.submit(o) for o in orders))
    assert len(commits) == 1
    positions = [p for r in results for p in r.positions]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    logged = await store.read(positions[0] - 1)
    assert [decode_payload(r.event.payload) for r in logged] == [
        e for r in results for e in r.events
    ]
    assert results[-1].events[0].event_type == "OrderAccepted"
    assert sum(e.event_type == "TradeExecuted" for e in results[-1].events) == 3


async def test_an_answer_comes_only_after_its_events_are_committed(
    core: Core, migrated_database: str
) -> None:
    result = await core.submit(f.buy(f.ALICE, "99.00", "1"))
    reader = await asyncpg.connect(migrated_database)  # another session sees only committed rows
    try:
        seen = await reader.fetchval(
            "SELECT count(*) FROM events WHERE notification_id = ANY($1::bigint[])",
            list(result.positions),
        )
    finally:
        await reader.close()
    assert seen == len(result.positions) > 0


class FailingOnce(PostgresEventStore):
    """The real store, with one append that fails as a lost connection would."""

    fail_next = False

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("connection lost during COMMIT")
        return await super().append(events)


@contextlib.asynccontextmanager
async def set_up_core(store: PostgresEventStore) -> AsyncIterator[Core]:
    """A started core on `store` with the test accounts and instrument, stopped after."""
    await store.open()
    core = Core(store)
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
        yield core
    finally:
        await core.stop()
        await store.close()


async def test_a_failed_commit_fails_the_whole_batch_and_leaves_state_as_before(
    migrated_database: str,
) -> None:
    store = FailingOnce(migrated_database)
    async with set_up_core(store) as core:
        await core.submit(f.sell(f.BOB, "100.00", "2"))
        before, head = core.state_hash(), await store.head()
        store.fail_next = True
        outcomes = await asyncio.gather(
            core.submit(f.buy(f.ALICE, "100.00", "1")),
            core.submit(f.buy(f.ALICE, "100.00", "1")),
            return_exceptions=True,
        )
        assert all(isinstance(o, ConnectionResetError) for o in outcomes)
        assert core.state_hash() == before
        assert await store.head() == head
        after = await core.submit(f.buy(f.ALICE, "100.00", "1"))
        assert after.positions[0] == head[0] + 1


async def test_a_restarted_core_rebuilds_the_same_state_from_snapshot_and_from_zero(
    core: Core, migrated_database: str
) -> None:
    for i in range(30):
        await core.submit(f.sell(f.BOB, f"{100 + i % 5}.00", "1"))
        await core.submit(f.buy(f.ALICE, f"{100 + i % 3}.00", "1"))
    live = core.state_hash()
    await core.stop()
    await core.store.close()  # type: ignore[attr-defined]

    restarted_store = PostgresEventStore(migrated_database)
    await restarted_store.open()
    try:
        restarted = Core(restarted_store)
        await restarted.start("restarted")
        from_snapshot = restarted.state_hash()
        snapshot = await restarted_store.latest_snapshot()
        assert snapshot is not None and snapshot.position > 0
        await restarted.stop()
        replay = Core(restarted_store)
        replay.store.latest_snapshot = _no_snapshot  # type: ignore[method-assign]
        await replay.recover()
    finally:
        await restarted_store.close()
    assert from_snapshot == live
    assert replay.state_hash() == live


async def _no_snapshot() -> None:
    return None


async def test_a_repeated_client_order_id_returns_the_first_outcome_and_writes_nothing(
    core: Core, store: PostgresEventStore
) -> None:
    order = f.buy(f.ALICE, "90.00", "1")
    first = await core.submit(order)
    head = await store.head()
    again = await core.submit(order)  # a client's retry after a lost answer
    assert again.duplicate and again.positions == ()
    assert again.events == first.events
    assert await store.head() == head


async def test_a_second_core_on_the_same_store_is_refused(
    core: Core, migrated_database: str
) -> None:
    other_store = PostgresEventStore(migrated_database)
    await other_store.open()
    try:
        with pytest.raises(WriterFenced, match="already written by test-core"):
            await Core(other_store).start("second-core")
    finally:
        await other_store.close()


async def test_values_beyond_the_kernels_range_are_rejected_and_the_core_runs_on(
    core: Core,
) -> None:
    # Schemathesis found this listing: it once stopped the core with OverflowError.
    from decimal import Decimal

    from domain.values import Asset, Symbol

    huge = f.list_instrument(
        symbol=Symbol("HUGE-USD"), base=Asset("HUGE"), tick_size=Decimal("40"),
        lot_size=Decimal("1E+24"), min_qty=Decimal("1E+24"), max_qty=Decimal("1E+24"),
        reference_price=Decimal("1880"), quote_decimals=15,
    )  # fmt: skip
    rejected = await core.submit(huge)
    assert [e.event_type for e in rejected.events] == ["CommandRejected"]
    assert "10^36 units: too large" in rejected.events[0].detail
    flood = await core.submit(f.deposit(f.ALICE, f.USD, "1E+40"))
    assert flood.events[0].event_type == "CommandRejected"
    assert core.fatal is None
    after = await core.submit(f.sell(f.BOB, "100.00", "1"))
    assert after.events[0].event_type == "OrderAccepted"
