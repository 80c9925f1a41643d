"""`tradecore audit verify` and `tradecore core verify` against a real log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from commands.core import Core
from infra.eventstore import PostgresEventStore
from tests.integration.test_core import setup_commands
from tests.unit.domain import factories as f

TRADECORE = str(Path(sys.executable).with_name("tradecore"))


async def fill_log(dsn: str) -> str:
    store = PostgresEventStore(dsn)
    await store.open()
    core = Core(store, snapshot_every=20)
    await core.start("fill")
    try:
        for command in setup_commands():
            await core.submit(command)
        for i in range(15):
            await core.submit(f.sell(f.BOB, f"{100 + i % 4}.00", "1"))
            await core.submit(f.buy(f.ALICE, f"{101 - i % 3}.00", "1"))
        return core.state_hash()
    finally:
        await core.stop()
        await store.close()


def tradecore(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRADECORE_DATABASE_URL": dsn}
    return subprocess.run([TRADECORE, *args], env=env, capture_output=True, text=True)


async def test_core_verify_replays_from_zero_to_the_live_state_hash(migrated_database: str) -> None:
    live = await fill_log(migrated_database)
    result = tradecore(migrated_database, "core", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"state {live}" in result.stdout
    assert "matches the replay at that position" in result.stdout


async def test_audit_verify_passes_then_names_the_position_of_a_tampered_row(
    migrated_database: str,
) -> None:
    await fill_log(migrated_database)
    clean = tradecore(migrated_database, "audit", "verify")
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(
            "UPDATE events SET state = "
            "convert_to(replace(convert_from(state, 'UTF8'), 'alice', 'mallory'), 'UTF8') "
            "WHERE notification_id = (SELECT min(notification_id) FROM events "
            "WHERE event_type = 'TradeExecuted')"
        )
        position = await conn.fetchval(
            "SELECT min(notification_id) FROM events WHERE event_type = 'TradeExecuted'"
        )
    finally:
        await conn.close()
    tampered = tradecore(migrated_database, "audit", "verify")
    assert clean.returncode == 0 and "log intact" in clean.stdout
    assert tampered.returncode == 1
    assert f"LOG TAMPERED at position {position}: " in tampered.stdout
    assert "was altered" in tampered.stdout
