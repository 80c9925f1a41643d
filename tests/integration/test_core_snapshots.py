"""Snapshots never hold up the sequencer: the state is captured between batches (in a forked
copy of the process, or in process where fork is unavailable) and stored in the background,
and a core under continuous load still snapshots every `snapshot_every` events."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from commands.core import Core, remove_orphaned_snapshot_files
from commands.ports import Snapshot
from domain.commands import Command
from infra.eventstore import PostgresEventStore
from tests.integration.test_core import setup_commands
from tests.unit.domain import factories as f

pytestmark = pytest.mark.integration


class SlowSnapshots(PostgresEventStore):
    """Storing a snapshot takes `delay` seconds (a huge state, a slow disk)."""

    delay = 0.0
    stored: list[int]

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 3) -> None:
        await asyncio.sleep(self.delay)
        await super().save_snapshot(snapshot, keep=keep)
        self.stored.append(snapshot.position)


async def open_store(dsn: str, delay: float = 0.0) -> SlowSnapshots:
    store = SlowSnapshots(dsn)
    store.delay, store.stored = delay, []
    await store.open()
    return store


def trade_pair(i: int) -> list[Command]:
    return [f.sell(f.BOB, f"{100 + i % 5}.00", "1"), f.buy(f.ALICE, f"{100 + i % 3}.00", "1")]


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "in-process"])
async def test_a_snapshot_being_stored_does_not_hold_up_commands_and_restarts_the_same(
    migrated_database: str, fork: bool
) -> None:
    store = await open_store(migrated_database, delay=2.0)
    core = Core(store, snapshot_every=20, fork_snapshots=fork)
    await core.start("snapshots")
    try:
        for command in setup_commands():
            await core.submit(command)
        # Past `snapshot_every`: the next batch starts a snapshot whose storing takes 2 s.
        started = time.monotonic()
        slowest = 0.0
        for i in range(20):
            for command in trade_pair(i):
                sent = time.monotonic()
                await core.submit(command)
                slowest = max(slowest, time.monotonic() - sent)
        assert time.monotonic() - started < 2.0, "commands waited for the snapshot"
        assert slowest < 1.0
        assert store.stored == []  # still being stored
        live = core.state_hash()
    finally:
        await core.stop()  # lets the snapshot land
        await store.close()
    assert store.stored, "the snapshot was not stored"
    assert core.stats.snapshots >= 1 and core.snapshot_error is None

    restarted_store = await open_store(migrated_database)
    try:
        restarted = Core(restarted_store)
        await restarted.start("restarted")
        snapshot = await restarted_store.latest_snapshot()
        assert snapshot is not None and snapshot.position in store.stored
        assert restarted.state_hash() == live
        await restarted.stop()
    finally:
        await restarted_store.close()


async def test_a_core_that_never_idles_still_snapshots(migrated_database: str) -> None:
    """With a batch always in flight the sequencer used to wait for an idle moment that
    never came: recovery would replay everything since the last quiet minute."""
    store = await open_store(migrated_database)
    core = Core(store, snapshot_every=50)
    await core.start("busy")
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            for command in trade_pair(n * 1000 + i):
                await core.submit(command)
            i += 1

    try:
        for command in setup_commands():
            await core.submit(command)
        clients = [asyncio.create_task(client(n)) for n in range(20)]
        deadline = time.monotonic() + 20
        while len(store.stored) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*clients)
        assert len(store.stored) >= 3, f"snapshots under load: {store.stored}"
        assert store.stored == sorted(store.stored)
    finally:
        stop.set()
        await core.stop()
        await store.close()


async def test_a_failing_snapshot_is_reported_and_the_core_decides_on(
    migrated_database: str,
) -> None:
    store = await open_store(migrated_database)

    async def refuse(snapshot: Snapshot, *, keep: int = 3) -> None:
        raise OSError("disk full")

    store.save_snapshot = refuse  # type: ignore[method-assign]
    core = Core(store, snapshot_every=10)
    await core.start("failing")
    try:
        for command in setup_commands():
            await core.submit(command)
        for i in range(15):
            for command in trade_pair(i):
                await core.submit(command)
        await asyncio.sleep(0.2)
        assert isinstance(core.snapshot_error, OSError)
        assert core.fatal is None
        result = await core.submit(f.buy(f.ALICE, "100.00", "1"))
        assert result.positions
    finally:
        await core.stop()
        await store.close()


def test_snapshot_files_of_killed_cores_are_removed_and_running_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process (reuse within the test is not a concern)
    orphan = tmp_path / f"tradecore-snapshot-{dead.pid}-abc.json"
    mine = tmp_path / f"tradecore-snapshot-{os.getpid()}-def.json"
    other = tmp_path / "unrelated.json"
    for path in (orphan, mine, other):
        path.write_text("{}")
    assert remove_orphaned_snapshot_files(str(tmp_path)) == [str(orphan)]
    assert not orphan.exists() and mine.exists() and other.exists()
