"""The fast paths of the core keep its contracts: the pipelined sequencer, the envelope, replay."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from commands.core import (
    EVENT_NAMESPACE,
    STREAM_NAMESPACE,
    CommandResult,
    Core,
    Streams,
    canonical_json,
    encode_payload,
    fast_stream_key,
    stream_key,
)
from commands.ports import NewEvent, RecordedEvent, Snapshot, chain_hash
from domain.events import EVENT_TYPES, AccountOpened, CommandRejected, Event, from_dict
from domain.exchange import Exchange
from domain.values import AccountId, Reason
from infra.audit import verify_log
from infra.eventstore import LogGap, PostgresEventStore
from tests.integration.test_core import set_up_core, setup_commands
from tests.unit.domain import factories as f
from tradecore.simulator import MarketSimulator


def simulated_events(commands: int = 3_000) -> list[Event]:
    sim = MarketSimulator(seed=11, traders=6)
    exchange = Exchange()
    events: list[Event] = []
    for command in sim.setup_commands():
        events += exchange.handle(command).events
    for _ in range(commands):
        outcome = exchange.handle(sim.next_command())
        sim.observe(outcome.events)
        events += outcome.events
    other = Exchange()  # the factories' instrument (USD with 2 decimals) in its own market
    extra = [
        f.halt(), f.resume(), f.withdraw(f.ALICE, f.USD, "1.00"), f.withdraw(f.CAROL),
        f.buy(f.ALICE, "100.00", "1"), f.buy(f.ALICE, "100.005", "1"), f.open_account(f.ALICE),
    ]  # fmt: skip
    for command in [*setup_commands(), *extra]:
        events += other.handle(command).events
    return events


def test_the_fast_envelope_writes_exactly_the_reference_payload_ids_and_stream_keys() -> None:
    events = simulated_events()
    assert {type(e) for e in events} == set(EVENT_TYPES), "the sample covers every event type"
    streams = Streams()
    reference: dict[str, int] = {}
    for index, event in enumerate(events):
        envelope = streams.envelope(event, index % 3)
        key = stream_key(event)
        reference[key] = reference.get(key, 0) + 1
        assert envelope.payload == canonical_json(event)
        assert envelope.payload == encode_payload(event)
        assert from_dict(json.loads(envelope.payload)) == event
        assert fast_stream_key(event) == key
        assert envelope.stream_id == uuid.uuid5(STREAM_NAMESPACE, key)
        assert envelope.event_id == uuid.uuid5(EVENT_NAMESPACE, f"{event.command_id}/{index % 3}")
        assert str(envelope.event_id) == str(envelope.event_id.__class__(str(envelope.event_id)))
        assert envelope.stream_version == reference[key]


def test_payloads_escape_like_json_dumps_and_refuse_floats() -> None:
    opened = AccountOpened(
        command_id="c-é", correlation_id="☃", timestamp_ns=1, account_id=AccountId('a"b\\c\n')
    )
    assert encode_payload(opened) == canonical_json(opened)
    rejected = CommandRejected(
        command_id="c", correlation_id="c", timestamp_ns=2**70, command_type="X",
        subject="\u2028", reason=Reason.UNKNOWN_ACCOUNT, detail="",
    )  # fmt: skip
    assert encode_payload(rejected) == canonical_json(rejected)
    broken = AccountOpened(
        command_id="c", correlation_id="c", timestamp_ns=1.5, account_id=AccountId("a")
    )
    with pytest.raises(TypeError):
        encode_payload(broken)


class SlowThenFailing(PostgresEventStore):
    """The real store; its next append waits for a signal and then fails as a lost connection."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.fail_next = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.appends: list[int] = []

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        self.appends.append(len(events))
        if self.fail_next:
            self.fail_next = False
            self.entered.set()
            await self.release.wait()
            raise ConnectionResetError("connection lost during COMMIT")
        return await super().append(events)


async def test_a_batch_decided_during_a_failing_commit_is_never_written_and_fails_too(
    migrated_database: str,
) -> None:
    store = SlowThenFailing(migrated_database)
    async with set_up_core(store) as core:
        await core.submit(f.sell(f.BOB, "100.00", "2"))
        before, head = core.state_hash(), await store.head()
        appends_before = len(store.appends)
        store.fail_next = True
        first = asyncio.ensure_future(core.submit(f.buy(f.ALICE, "100.00", "1")))
        await store.entered.wait()  # the first batch is committing ...
        second = asyncio.ensure_future(core.submit(f.buy(f.ALICE, "100.00", "1")))
        for _ in range(20):  # ... while the second is decided on top of it
            await asyncio.sleep(0)
        store.release.set()
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(o, ConnectionResetError) for o in outcomes)
        assert len(store.appends) == appends_before + 1  # the second batch never reached the store
        assert core.state_hash() == before
        assert await store.head() == head
        after = await core.submit(f.buy(f.ALICE, "100.00", "1"))
        assert after.positions[0] == head[0] + 1
        assert (await verify_log(store)).ok


class GatedStore(PostgresEventStore):
    """The real store; notes when each append starts, and holds the first one at a gate."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.log: list[str] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        self.log.append("append")
        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            await gate.wait()
        return await super().append(events)


async def test_the_batch_decided_on_top_goes_to_the_store_before_the_first_is_answered(
    migrated_database: str,
) -> None:
    """The store must not idle while the loop wakes every caller of the batch it just
    committed: the next decided batch is handed to it first."""
    store = GatedStore(migrated_database)
    async with set_up_core(store) as core:
        store.log.clear()
        store.gate = gate = asyncio.Event()

        async def submit(name: str, command: Any) -> CommandResult:
            result = await core.submit(command)
            store.log.append(f"answered {name}")
            return result

        first = asyncio.ensure_future(submit("first", f.buy(f.ALICE, "100.00", "1")))
        await store.entered.wait()  # the first batch is committing ...
        second = asyncio.ensure_future(submit("second", f.buy(f.ALICE, "100.00", "1")))
        for _ in range(20):  # ... while the second is decided on top of it
            await asyncio.sleep(0)
        gate.set()
        one, two = await asyncio.gather(first, second)
        assert store.log[:3] == ["append", "append", "answered first"]
        assert two.positions[0] == one.positions[-1] + 1
        assert (await verify_log(store)).ok


async def test_a_call_at_rest_waits_for_the_batch_in_flight_and_runs_before_the_next(
    migrated_database: str,
) -> None:
    store = GatedStore(migrated_database)
    async with set_up_core(store) as core:
        store.log.clear()
        store.gate = gate = asyncio.Event()
        first = asyncio.ensure_future(core.submit(f.buy(f.ALICE, "100.00", "1")))
        await store.entered.wait()  # the first batch is committing
        seen: list[int] = []
        core.call_at_rest(lambda: (store.log.append("at rest"), seen.append(core.position)))
        second = asyncio.ensure_future(core.submit(f.buy(f.ALICE, "100.00", "1")))
        for _ in range(20):
            await asyncio.sleep(0)
        assert "at rest" not in store.log  # not while a batch is in flight
        gate.set()
        one, _ = await asyncio.gather(first, second)
        assert store.log[:3] == ["append", "at rest", "append"]
        assert seen == [one.positions[-1]]  # memory equalled the log up to the first batch


async def test_many_concurrent_clients_get_gap_free_positions_in_the_order_they_were_decided(
    store: PostgresEventStore,
) -> None:
    commits: list[list[RecordedEvent]] = []
    core = Core(store, max_batch=50, snapshot_every=500)
    core.on_commit = commits.append
    await core.start("test-core")
    sim = MarketSimulator(seed=5, traders=8)
    try:
        for command in sim.setup_commands():
            await core.submit(command)

        async def client() -> list[int]:
            positions: list[int] = []
            for _ in range(40):
                command = sim.next_command()
                result = await core.submit(command)
                sim.observe(result.events)
                positions += result.positions
            return positions

        results = await asyncio.gather(*(client() for _ in range(25)))
        live = core.state_hash()
    finally:
        await core.stop()
    positions = sorted(p for r in results for p in r)
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    committed = [r.position for batch in commits for r in batch]
    assert committed == sorted(committed)
    assert len(commits) > 1  # batches really were pipelined one after another
    assert (await verify_log(store)).ok
    replay = Core(store)
    await replay.recover()
    assert replay.state_hash() == live
    zero = Core(store)
    await zero.replay_tail()
    assert zero.state_hash() == live


async def test_replay_refuses_to_skip_a_missing_position(
    migrated_database: str, store: PostgresEventStore
) -> None:
    core = Core(store, snapshot_every=10**9)
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
    finally:
        await core.stop()
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("DELETE FROM events WHERE notification_id = 3")
    finally:
        await conn.close()
    with pytest.raises(LogGap, match="gap"):
        await Core(store).replay_tail(batch=2)


async def test_replay_pages_read_exactly_the_positions_asked_for(store: PostgresEventStore) -> None:
    core = Core(store, snapshot_every=10**9)
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
    finally:
        await core.stop()
    head, _ = await store.head()
    pages = [page async for page in store.read_payloads(1, head - 1, page=2)]
    assert [row[0] for page in pages for row in page] == list(range(2, head))
    assert all(len(page) <= 2 for page in pages)
    records = await store.read(1, head - 2)
    assert [bytes(row[2]) for page in pages for row in page] == [r.event.payload for r in records]
    assert [row[1] for page in pages for row in page] == [r.event.stream_version for r in records]
    for record in records:
        assert chain_hash(record.prev_hash, record.position, record.event) == record.hash
    partial = Core(store)
    assert await partial.replay_tail(batch=3, upto=4) == 4
    assert partial.position == 4


class SnapshotsTooBig(PostgresEventStore):
    """The real store, whose snapshots are refused (as jsonb refuses a state over 256 MB)."""

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        raise asyncpg.ProgramLimitExceededError("total size of jsonb array elements exceeds")


async def test_a_snapshot_that_cannot_be_saved_does_not_stop_the_core(
    migrated_database: str,
) -> None:
    store = SnapshotsTooBig(migrated_database)
    await store.open()
    core = Core(store, snapshot_every=5)
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
        result = await core.submit(f.buy(f.ALICE, "99.00", "1"))
        assert result.positions
        for _ in range(100):  # snapshots are stored in the background
            if core.snapshot_error is not None:
                break
            await asyncio.sleep(0.02)
        assert isinstance(core.snapshot_error, asyncpg.ProgramLimitExceededError)
        assert core.fatal is None
        live = core.state_hash()
    finally:
        await core.stop()
    replay = Core(store)
    await replay.recover()  # no snapshot: the whole log
    assert replay.state_hash() == live
    await store.close()


async def test_a_long_queue_is_split_while_the_store_is_idle_and_answered_in_order(
    store: PostgresEventStore,
) -> None:
    commits: list[list[RecordedEvent]] = []
    core = Core(store, split_above=8)
    core.on_commit = commits.append
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
        commits.clear()
        orders = [f.buy(f.ALICE, "99.00", "1") for _ in range(40)]
        results = await asyncio.gather(*(core.submit(o) for o in orders))
    finally:
        await core.stop()
    # The first half went to the idle store at once; the rest was decided while it committed.
    assert [len(batch) for batch in commits] == [40, 40]
    positions = [p for r in results for p in r.positions]
    assert positions == [r.position for batch in commits for r in batch]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    assert (await verify_log(store)).ok


async def test_a_log_without_the_fence_trigger_is_still_appended_to_behind_the_epoch_check(
    migrated_database: str, store: PostgresEventStore
) -> None:
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute("DROP TRIGGER events_writer_fence ON events")  # a pre-0007 log
    finally:
        await conn.close()
    core = Core(store)
    await core.start("test-core")
    try:
        for command in setup_commands():
            await core.submit(command)
        result = await core.submit(f.buy(f.ALICE, "99.00", "1"))
    finally:
        await core.stop()
    assert result.positions and (await verify_log(store)).ok
