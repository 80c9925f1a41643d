"""Price alerts end to end on the real event store: commands through the core, the evaluator
firing them from the log exactly once (across evaluator restarts, core restarts and read-model
rebuilds), snapshots with and without alerts, and the alerts read model."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from commands.core import Core, verify_replay
from domain.commands import CancelAlert, Command, CreateAlert
from domain.events import AlertCondition, AlertCreated, AlertId, AlertTriggered
from domain.values import AccountId
from infra.eventstore import PostgresEventStore
from projections.alert_evaluator import AlertEvaluator, AlertWatch
from tests.integration.test_core import setup_commands
from tests.integration.test_projections import project_from_store, rebuild_all, table_rows
from tests.unit.domain import factories as f

pytestmark = pytest.mark.integration


def create(alert_id: str, account: str, condition: AlertCondition, **fields: Any) -> CreateAlert:
    return CreateAlert(
        **f.meta(),
        account_id=AccountId(account),
        alert_id=AlertId(alert_id),
        symbol=f.SYMBOL,
        condition=condition,
        **fields,
    )


def alert_commands() -> list[Command]:
    return [
        create("up", f.ALICE, AlertCondition.CROSSES_ABOVE, level=Decimal("101.00")),
        create("down", f.BOB, AlertCondition.CROSSES_BELOW, level=Decimal("99.00")),
        create("move", f.ALICE, AlertCondition.MOVES_PCT, pct=Decimal("2"), window_s=3600),
        create("never", f.ALICE, AlertCondition.CROSSES_ABOVE, level=Decimal("109.00")),
        create("gone", f.BOB, AlertCondition.CROSSES_ABOVE, level=Decimal("100.50")),
        CancelAlert(**f.meta(), account_id=f.BOB, alert_id=AlertId("gone")),
    ]


def trades(*prices: str) -> list[Command]:
    """One trade per price: bob rests a sell, alice takes it."""
    out: list[Command] = []
    for price in prices:
        out += [f.sell(f.BOB, price, "1"), f.buy(f.ALICE, price, "1")]
    return out


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(migrated_database, min_size=1, max_size=2)
    yield made
    await made.close()


async def started(dsn: str, snapshot_every: int = 500_000) -> Core:
    """A core on its own store connection (the writer lock lives as long as the store)."""
    store = PostgresEventStore(dsn)
    await store.open()
    core = Core(store, snapshot_every=snapshot_every)
    await core.start("test-core")
    return core


async def stopped(core: Core) -> None:
    await core.stop()
    await core.store.close()  # type: ignore[attr-defined]


async def submit_all(core: Core, commands: list[Command]) -> None:
    for command in commands:
        await core.submit(command)


async def evaluate(
    pool: asyncpg.Pool, core: Core, watch: AlertWatch | None = None
) -> AlertEvaluator:
    evaluator = AlertEvaluator(pool, core.submit, time.time_ns, batch_size=7)
    await evaluator.start()
    if watch is not None:
        evaluator.watch = watch  # forget what the log says is closed
    await evaluator.catch_up()
    return evaluator


async def triggered_in_log(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT state FROM events WHERE event_type = 'AlertTriggered' ORDER BY notification_id"
    )
    counts: dict[str, int] = {}
    for row in rows:
        alert_id = json.loads(bytes(row["state"]))["alert_id"]
        counts[alert_id] = counts.get(alert_id, 0) + 1
    return counts


async def test_alerts_fire_once_from_trades_across_restarts_and_rebuilds(
    store: PostgresEventStore, pool: asyncpg.Pool, migrated_database: str
) -> None:
    core = await started(migrated_database, snapshot_every=25)
    try:
        await submit_all(core, setup_commands() + alert_commands())
        await submit_all(core, trades("100.50", "101.00", "103.00", "98.00", "100.00"))
        first = await evaluate(pool, core)
        assert await triggered_in_log(pool) == {"up": 1, "down": 1, "move": 1}
        assert first.stats.triggered == 3

        # The evaluator restarts: the log says which alerts closed, nothing fires again.
        head = (await core.store.head())[0]
        again = await evaluate(pool, core)
        assert again.stats.fired == 0
        assert (await core.store.head())[0] == head

        # Even an evaluator that forgot everything only gets no-ops from the core.
        amnesiac = await evaluate(pool, core, watch=AlertWatch())
        assert amnesiac.stats.fired >= 3 and amnesiac.stats.triggered == 0
        assert (await core.store.head())[0] == head

        # More trades after a restart: nothing closed fires, "never" still waits.
        await submit_all(core, trades("102.00", "97.00"))
        await evaluate(pool, core)
        assert await triggered_in_log(pool) == {"up": 1, "down": 1, "move": 1}
        assert {a.alert_id for a in core.alerts.active()} == {"never"}
        live = core.state_hash()
    finally:
        await stopped(core)

    # The core restarts from its snapshot (with alerts) and the tail: the same state.
    restarted = await started(migrated_database)
    try:
        assert restarted.state_hash() == live
        assert restarted.alerts.state_hash() == core.alerts.state_hash()
        await evaluate(pool, restarted)
        assert await triggered_in_log(pool) == {"up": 1, "down": 1, "move": 1}
    finally:
        await stopped(restarted)
    check = await verify_replay(store)
    assert check.ok and check.replayed_hash == live

    # The read model, built incrementally, then rebuilt from the log: identical.
    await project_from_store(migrated_database)
    built = await table_rows(migrated_database)
    await rebuild_all(migrated_database)
    assert await table_rows(migrated_database) == built
    rows = {r["alert_id"]: r for r in await pool.fetch("SELECT * FROM alerts")}
    assert {k: r["status"] for k, r in rows.items()} == {
        "up": "triggered",
        "down": "triggered",
        "move": "triggered",
        "never": "active",
        "gone": "canceled",
    }
    assert rows["up"]["trigger_price"] == Decimal("101.00")
    assert rows["up"]["reference_price"] == Decimal("100.50")
    assert rows["down"]["trigger_price"] == Decimal("98.00")
    assert rows["move"]["trigger_price"] == Decimal("103.00")
    assert rows["never"]["level"] == Decimal("109.00")

    # After the rebuild the evaluator still fires nothing new.
    core = await started(migrated_database)
    try:
        await evaluate(pool, core)
    finally:
        await stopped(core)
    assert await triggered_in_log(pool) == {"up": 1, "down": 1, "move": 1}


async def test_an_old_snapshot_without_alerts_still_loads_and_the_tail_brings_them_back(
    store: PostgresEventStore, migrated_database: str
) -> None:
    core = await started(migrated_database)
    try:
        await submit_all(core, setup_commands())
        old = await core.snapshot()  # written before any alert: the layout older cores read
        assert old.text is None or not old.text.startswith('{"alerts"')
        assert old.state_hash == core.exchange.state_hash()
        await submit_all(core, alert_commands())
        with_alerts = await core.snapshot()
        await submit_all(core, trades("101.00"))
        live = core.state_hash()
    finally:
        await stopped(core)
    assert with_alerts.state_hash != core.exchange.state_hash()

    restarted = await started(
        migrated_database
    )  # the snapshot with alerts, plus the trades after it
    try:
        assert restarted.state_hash() == live
        assert restarted.alerts.alerts.keys() == core.alerts.alerts.keys()
    finally:
        await stopped(restarted)

    # Only the old snapshot: alerts come back from the tail.
    await store.pool.execute("DELETE FROM core_snapshots WHERE position > $1", old.position)
    from_old = await started(migrated_database)
    try:
        assert from_old.state_hash() == live
        created = [e for e in from_old.alerts.alerts.values() if e.alert_id == "up"]
        assert created and created[0].level_ticks == 10_100
    finally:
        await stopped(from_old)


async def test_alert_commands_share_the_ordered_log_and_their_rejections_are_recorded(
    migrated_database: str,
) -> None:
    core = await started(migrated_database)
    try:
        await submit_all(core, setup_commands())
        ok = await core.submit(
            create("a", f.ALICE, AlertCondition.CROSSES_ABOVE, level=Decimal("1"))
        )
        dup = await core.submit(
            create("a", f.BOB, AlertCondition.CROSSES_ABOVE, level=Decimal("1"))
        )
        steal = await core.submit(CancelAlert(**f.meta(), account_id=f.BOB, alert_id=AlertId("a")))
        nobody = await core.submit(
            create("b", "mallory", AlertCondition.CROSSES_ABOVE, level=Decimal("1"))
        )
        opened = await core.submit(f.open_account("mallory"))
        later = await core.submit(
            create("b", "mallory", AlertCondition.CROSSES_ABOVE, level=Decimal("1"))
        )
    finally:
        await stopped(core)
    assert isinstance(ok.events[0], AlertCreated) and not ok.rejected
    assert [r.rejected for r in (dup, steal, nobody)] == [True, True, True]
    reasons = [str(getattr(r.events[0], "reason", "")) for r in (dup, steal, nobody)]
    assert reasons == ["duplicate_alert_id", "not_alert_owner", "unknown_account"]
    assert not opened.rejected and not later.rejected  # the core learned the new account
    positions = [p for r in (ok, dup, steal, nobody, opened, later) for p in r.positions]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert not any(isinstance(e, AlertTriggered) for r in (ok, later) for e in r.events)
