"""The trading screen stays responsive under the demo market (at least 50 book updates/s
and 20 trades/s on the watched symbol) with no unbounded growth of DOM nodes or memory,
over TRADECORE_SOAK_SECONDS (default 300: the issue's five minutes), in Debian's chromium.

The figures of the run (per-sample nodes, heap after a forced GC, timer lag, click-to-ticket
time, message rates) go to test-artifacts/web-soak.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import test_web_trading as web_trading
from tests.e2e.test_web_trading import (
    ARTIFACTS,
    CHROMIUM,
    WEB,
    built_web,
    database,
    running_tradecore,
)

__all__ = ["built_web", "database"]  # fixtures, used by name

pytestmark = web_trading.pytestmark  # e2e, and skipped only where chromium is absent

SECONDS = int(os.environ.get("TRADECORE_SOAK_SECONDS", "300"))
SAMPLE_SECONDS = max(5, min(10, SECONDS // 12))
SYMBOL = "BTC-USD"
WARMUP_SECONDS = min(60, SECONDS // 4)


@pytest.fixture
def busy_tradecore(database: str) -> Iterator[str]:
    # The whole demo market on the watched symbol, fast enough for the load.
    rate = os.environ.get("TRADECORE_SOAK_DEMO_RATE", "300")
    with running_tradecore(
        database,
        "web-soak-tradecore.log",
        TRADECORE_DEMO_RATE=rate,
        TRADECORE_DEMO_SYMBOLS=SYMBOL,
        TRADECORE_READ_SIDE="true",
    ) as base:
        yield base


@pytest.mark.timeout(SECONDS + 360)  # the suite's 300 s limit is shorter than the soak
def test_the_screen_stays_responsive_and_bounded_under_the_demo_load(
    built_web: None, busy_tradecore: str
) -> None:
    run = subprocess.run(
        ["node", "e2e/soak.mjs"],
        cwd=WEB,
        env={
            **os.environ,
            "BASE_URL": busy_tradecore,
            "SYMBOL": SYMBOL,
            "SOAK_SECONDS": str(SECONDS),
            "SAMPLE_SECONDS": str(SAMPLE_SECONDS),
            "ARTIFACTS": str(ARTIFACTS),
            "CHROMIUM": str(CHROMIUM),
        },
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
    )
    lines = run.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    (ARTIFACTS / "web-soak.json").write_text(json.dumps(report, indent=2))
    assert run.returncode == 0 and "error" not in report, (
        f"{report.get('error')}\n--- steps:\n{run.stderr[-4000:]}"
    )
    samples = report["samples"]
    seconds = report["seconds"]
    assert seconds >= SECONDS and len(samples) >= 4
    rates = {kind: n / seconds for kind, n in report["messages"].items()}
    # A book update is a changed level; the server sends one delta per commit with every
    # level the commit changed (and merges deltas for a slow reader).
    book = rates.get("book:levels", 0)
    trades = rates.get("trades:trade", 0)
    assert book >= 50 and trades >= 20, f"the demo market did not give the issue's load: {rates}"

    settled = [s for s in samples if s["t"] > WARMUP_SECONDS]
    early, late = settled[: len(settled) // 2], settled[len(settled) // 2 :]

    def median(key: str, part: list[dict[str, Any]]) -> float:
        return float(statistics.median(s[key] for s in part))

    # No unbounded growth. The page's elements are capped by design (ladder, tape, lists):
    # the second half may not hold more than the first. CDP's node count (and the listener
    # count with it) also sees nodes React has just dropped that the forced GC has not swept
    # yet, in bursts: one 300 s run sampled 786-2,214 nodes over a floor of exactly 790, with
    # 432 elements in the page throughout. What the page keeps is that floor, and a leak
    # raises it, so the halves' lowest samples are compared; the heap compares medians.
    def floor(key: str, part: list[dict[str, Any]]) -> float:
        return float(min(s[key] for s in part))

    assert max(s["domElements"] for s in late) <= max(s["domElements"] for s in early) + 50, samples
    assert floor("nodes", late) <= floor("nodes", early) * 1.2 + 100, samples
    assert median("heapMB", late) <= median("heapMB", early) * 1.25 + 2, samples
    assert floor("listeners", late) <= floor("listeners", early) + 20, samples
    # Responsive: every click on the ladder reaches the ticket, typically at once, and the
    # main thread never stalls for a second. (Figures are in web-soak.json.)
    clicks = sorted(s["clickMs"] for s in settled if s["clickMs"] is not None)
    assert len(clicks) == len(settled), samples
    assert clicks[len(clicks) // 2] <= 250 and clicks[int(len(clicks) * 0.9)] <= 1000, clicks
    assert max(s["lagMs"] for s in settled) <= 1000, samples
    assert all(s["connection"] == "up" for s in settled), samples
