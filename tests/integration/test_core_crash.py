"""Crash tests with real processes: `kill -9` the core while its clients are submitting.

`tradecore simulate` runs the core and its simulated clients in one process and appends a
line per acknowledged command to an acks file (written after the answer, before the next
command). After the kill the log must hold every acknowledged command's events exactly once,
at the positions the client was told, and a restarted core must reach the same state as a
replay from zero.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from commands.core import Core, verify_replay
from infra.audit import verify_log
from infra.eventstore import PostgresEventStore
from tradecore.simulator import MarketSimulator

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
pytestmark = pytest.mark.integration


def simulate(dsn: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TRADECORE_DATABASE_URL": dsn, "TRADECORE_ENV": "test"}
    return subprocess.Popen(
        [TRADECORE, "simulate", "--no-migrate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for _ in f)


def kill_after_acks(proc: subprocess.Popen[str], acks: Path, at_least: int) -> None:
    deadline = time.monotonic() + 90
    while count_lines(acks) < at_least:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"tradecore simulate ended early ({proc.returncode}):\n{output}")
        assert time.monotonic() < deadline, "the core acknowledged too few commands in 90 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


async def logged_commands(dsn: str) -> dict[str, list[int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT command_id, notification_id FROM events ORDER BY 2")
    finally:
        await conn.close()
    by_command: dict[str, list[int]] = {}
    for row in rows:
        by_command.setdefault(row["command_id"], []).append(row["notification_id"])
    return by_command


def test_kill_9_mid_flow_loses_no_acknowledged_command_and_restart_equals_replay(
    migrated_database: str, tmp_path: Path
) -> None:
    acks = tmp_path / "acks.jsonl"
    common = ["--rate", "0", "--clients", "16", "--acks", str(acks), "--duration", "120"]
    # Two rounds: the second core takes over the log the first one was killed on.
    for round_no, target in enumerate((1_500, 3_000)):
        proc = simulate(
            migrated_database, *common, "--seed", str(round_no), "--snapshot-every", "400"
        )
        kill_after_acks(proc, acks, target)

    acked = [json.loads(line) for line in acks.read_text().splitlines() if line.strip()]
    assert len(acked) >= 3_000
    logged = asyncio.run(logged_commands(migrated_database))
    ids = Counter(a["command_id"] for a in acked)
    assert max(ids.values()) == 1, "a command was acknowledged twice"
    for ack in acked:
        # Exactly once, at the positions the client was told.
        assert logged.get(ack["command_id"]) == ack["positions"], ack["command_id"]

    async def restart_and_replay() -> None:
        store = PostgresEventStore(migrated_database)
        await store.open()
        try:
            audit = await verify_log(store)
            assert audit.ok, audit.problem
            check = await verify_replay(store)
            assert check.snapshot_position is not None, "the crash runs took no snapshot"
            assert check.ok, check
            core = Core(store)
            await core.start("after-the-crash")  # the dead writer's fence is gone
            assert core.state_hash() == check.replayed_hash
            assert core.position == check.position
            sim = MarketSimulator(seed=99, run_id="after")
            for command in sim.setup_commands(
                known_symbols=core.exchange.instruments, known_accounts=core.exchange.accounts
            ):
                await core.submit(command)
            result = await core.submit(sim.next_command())
            assert result.positions and result.positions[0] > check.position
            await core.stop()
        finally:
            await store.close()

    asyncio.run(restart_and_replay())


def test_a_second_core_process_on_the_same_log_is_refused(
    migrated_database: str, tmp_path: Path
) -> None:
    first = simulate(migrated_database, "--rate", "50", "--duration", "60")
    try:
        acks = tmp_path / "acks.jsonl"
        second = None
        deadline = time.monotonic() + 30
        # Wait until the first core is writing, then start a second one on the same log.
        while time.monotonic() < deadline:
            if asyncio.run(logged_commands(migrated_database)):
                break
            time.sleep(0.2)
        second = simulate(migrated_database, "--rate", "50", "--acks", str(acks))
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "already written by" in output and "stop the other one first" in output
        assert count_lines(acks) == 0
        assert first.poll() is None, "the first core should keep running"
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 0
