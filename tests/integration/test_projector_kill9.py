"""`tradecore projections run`, a real process consuming the real broker, is killed with
SIGKILL while it is projecting; restarted, it resumes from what it committed and the read
models equal the ones built straight from the event store, row for row (invariant 4)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from infra.settings import Settings
from projections.registry import all_projectors
from tests.integration.test_projections import Market, project_from_store, run_market, table_rows
from tests.integration.test_projections_kafka import empty_read_models, publish

TRADECORE = str(Path(sys.executable).with_name("tradecore"))


@pytest.fixture
async def projected(migrated_database: str) -> Market:
    market = await run_market(migrated_database, orders=600)
    await project_from_store(market.dsn)
    return market


def start_runner(market: Market, topic: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    database = market.dsn.rsplit("/", 1)[1].split("?")[0]
    env = {**os.environ, "TRADECORE_PG_DATABASE": database, "TRADECORE_ENV": "test"}
    with log.open("ab") as out:
        return subprocess.Popen(
            # small transactions, so that the kill lands between and inside many of them
            [
                TRADECORE,
                "projections",
                "run",
                "--topic",
                topic,
                "--group",
                group,
                "--max-records",
                "20",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def positions(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, position FROM projection_positions")
    return {r["name"]: int(r["position"]) for r in rows}


async def test_a_projector_process_killed_with_sigkill_resumes_without_loss_or_double_count(
    projected: Market, settings: Settings, tmp_path: Path
) -> None:
    reference = await table_rows(projected.dsn)
    topic = await publish(projected, settings.kafka_servers)
    await empty_read_models(projected)
    names = {p.name for p in all_projectors()}
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "runner.log"
    conn = await asyncpg.connect(projected.dsn)

    # First life: killed as soon as the projectors are part of the way through.
    first = start_runner(projected, topic, group, log)
    killed_at: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            assert first.poll() is None, log.read_text()[-3000:]
            now = await positions(conn)
            if set(now) == names and min(now.values()) > 0 and max(now.values()) < projected.head:
                first.send_signal(signal.SIGKILL)
                killed_at = now
                break
            await asyncio.sleep(0.005)
    finally:
        if first.poll() is None and not killed_at:
            first.kill()
        first.wait(timeout=30)
    assert killed_at, f"never caught the runner part of the way: {await positions(conn)}"
    assert first.returncode == -signal.SIGKILL

    # Second life: the same group, from the committed offsets and positions.
    second = start_runner(projected, topic, group, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert second.poll() is None, log.read_text()[-3000:]
            now = await positions(conn)
            if set(now) == names and min(now.values()) == projected.head:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"did not catch up: {now} of {projected.head}")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    await conn.close()
    assert await table_rows(projected.dsn) == reference
