"""The web UI in a real browser: alice rests, amends and cancels an order, bob crosses her
next one, both see the fill in their balances, the tape, the live candle and (from the
read models) alice's position; the auditor filters the log and opens alice "as of".

Needs the built UI (`make web`: web/dist and web/node_modules) and Debian's chromium
(`apt-get install -y chromium`); skipped only when /usr/bin/chromium is absent. Runs
`tradecore up` on a free port and its own database (the running stack's PostgreSQL), with a
quiet demo market so nothing but bob can trade with alice's order, and the read side. The
page's WebSocket is dropped once on purpose. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from infra.settings import Settings
from infra.stack import Stack
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TRADECORE = str(Path(sys.executable).with_name("tradecore"))
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (/usr/bin/chromium): "
        "apt-get install -y chromium",
    ),
]


@pytest.fixture
def built_web() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in (WEB / "dist" / "index.html", WEB / "node_modules" / "playwright-core")
        if not p.exists()
    ]
    assert not missing, f"the web UI is not built ({', '.join(missing)} missing): run `make web`"
    assert shutil.which("node"), "node is not on PATH (Node.js 18+ builds and drives the web UI)"


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own on the running stack, so the core's writer lock is ours."""
    settings = Settings(env="test")
    Stack(settings, report=lambda _: None).up()
    name = f"test_web_{uuid.uuid4().hex[:10]}"
    admin = settings.dsn_for("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_tradecore(database: str, log_name: str, **env_overrides: str) -> Iterator[str]:
    """`tradecore up` on a free port; yields its base URL; Ctrl-C at the end."""
    port = free_port()
    env = {
        **os.environ,
        "TRADECORE_HTTP_PORT": str(port),
        "TRADECORE_PG_DATABASE": database,
        **env_overrides,
    }
    log = ARTIFACTS / log_name
    ARTIFACTS.mkdir(exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [TRADECORE, "up"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for_login(base, proc, log)
            yield base
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def tradecore(database: str) -> Iterator[str]:
    with running_tradecore(
        database,
        "web-e2e-tradecore.log",
        # Lists the instruments and seeds the demo users, then sends about one command.
        TRADECORE_DEMO_RATE="0.001",
        # The read side too (its Kafka topics are named after this database): positions
        # and candle history come from the read models.
        TRADECORE_READ_SIDE="true",
    ) as base:
        yield base


def _wait_for_login(base: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"tradecore up exited:\n{log.read_text()[-3000:]}"
        try:
            if _token(base, "admin"):
                return
        except (httpx.TransportError, AssertionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the demo users could not log in:\n{log.read_text()[-3000:]}")


def _token(base: str, user: str) -> str:
    response = httpx.post(
        f"{base}/auth/token",
        data={"grant_type": "password", "username": user, "password": f"{user}-demo"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _quiet_instrument(base: str) -> dict[str, Any]:
    """An instrument on which the demo market placed no order (it sends about one)."""
    headers = {"Authorization": f"Bearer {_token(base, 'admin')}"}
    events = httpx.get(f"{base}/events?after=0&limit=1000", headers=headers, timeout=10).json()
    busy = {
        e["event"].get("symbol")
        for e in events
        if e["event_type"].startswith("Order") or e["event_type"] == "TradeExecuted"
    }
    instruments = httpx.get(f"{base}/instruments", headers=headers, timeout=10).json()
    quiet = [i for i in instruments if i["symbol"] in SYMBOLS and i["symbol"] not in busy]
    assert quiet, f"every demo symbol has orders: {busy}"
    return dict(quiet[0])


def _amounts(screen: dict[str, dict[str, str]]) -> dict[str, tuple[Decimal, Decimal]]:
    return {a: (Decimal(v["available"]), Decimal(v["reserved"])) for a, v in screen.items()}


def test_two_traders_trade_through_the_web_ui(built_web: None, tradecore: str) -> None:
    base = tradecore
    index = httpx.get(f"{base}/", timeout=10)
    assert index.status_code == 200 and '<div id="root">' in index.text, (
        "the gateway does not serve web/dist at / (is gateway.web.mount_web wired in?)"
    )
    inst = _quiet_instrument(base)
    tick, lot = Decimal(inst["tick_size"]), Decimal(inst["lot_size"])
    # Ten ticks under the last price: the trade there crosses alice's alert level.
    price = (Decimal(inst["last_price"]) / tick).to_integral_value() * tick - 10 * tick
    qty, amended = lot * 10, lot * 4
    far = (price * Decimal("0.5") / tick).to_integral_value() * tick  # far outside the band
    run = subprocess.run(
        ["node", "e2e/trade.mjs"],
        cwd=WEB,
        env={
            **os.environ,
            "BASE_URL": base,
            "SYMBOL": inst["symbol"],
            "PRICE": str(price),
            "QTY": str(qty),
            "AMEND_QTY": str(amended),
            "FAR_PRICE": str(far),
            "BAD_PRICE": f"{price}{'5' if tick < 1 else '.5'}",
            "ARTIFACTS": str(ARTIFACTS),
            "CHROMIUM": str(CHROMIUM),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = run.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    assert run.returncode == 0 and "error" not in report, (
        f"{report.get('error')}\n--- steps:\n{run.stderr[-4000:]}\n"
        f"--- alerts channel frames alice's page got: {report.get('alertFrames')}"
    )

    quote, base_asset = inst["quote"], inst["base"]
    notional = price * qty
    assert "tick size" in report["tickError"]
    assert "price_band" in report["rejection"]
    assert report["firstOrder"].startswith("Accepted") and report["openAfterPlace"] == 1
    assert report["connection"] == "up" and "live data" in report["connectionText"]
    assert report["bookShowsOrder"] is True
    # The dropped socket: the indicator went amber, a new socket was opened, and the book
    # was rebuilt from a fresh snapshot, without a page reload.
    assert "live" in report["droppedState"] and "live data" in report["reconnectedText"]
    assert report["socketsOpened"] >= 2

    start = _amounts(report["aliceStart"])
    resting = _amounts(report["aliceResting"])
    # A resting buy reserves at least its notional (plus the worst-case fee) of the quote.
    assert resting[quote][1] - start[quote][1] >= notional
    assert resting[quote][0] + resting[quote][1] == start[quote][0] + start[quote][1]
    amended_ = _amounts(report["aliceAmended"])
    assert amended_[quote][1] < resting[quote][1]
    assert _amounts(report["aliceCanceled"]) == start  # the cancel released everything

    assert report["secondOrder"].startswith("Accepted")
    assert report["bobOrder"].startswith("Accepted")
    before, after = _amounts(report["aliceBeforeFill"]), _amounts(report["aliceAfterFill"])
    screens = {k: v for k, v in report.items() if k.startswith(("alice", "bob"))}
    assert after[base_asset][0] - before[base_asset][0] == qty, screens  # alice got the base
    assert after[quote][1] == start[quote][1]  # nothing left reserved
    paid = start[quote][0] - after[quote][0]
    assert notional <= paid <= notional * Decimal("1.01")  # notional plus a maker fee
    bob0, bob1 = _amounts(report["bobStart"]), _amounts(report["bobAfterFill"])
    assert bob0[base_asset][0] - bob1[base_asset][0] == qty, screens  # bob gave the base
    received = bob1[quote][0] - bob0[quote][0]
    assert notional * Decimal("0.99") <= received <= notional  # notional less a taker fee
    assert report["aliceOpenAfterFill"] == 0
    assert report["alertCreated"] == "Alert created"
    assert report["alertStatus"] == "triggered" and inst["symbol"] in report["alertNotice"]
    assert report["tapeAndCandle"] is True
    assert Decimal(report["candleVolume"]) >= qty
    assert Decimal(report["alicePosition"]) == qty
    assert Decimal(report["marketVolume"]) >= qty  # the market list's 24-hour volume
    assert report["loggedOut"] is True
    assert report["auditorEvents"] > 0
    # alice's story on the symbol, as the auditor's filters found it
    assert {
        "OrderAccepted", "OrderRested", "OrderAmended", "OrderCanceled", "TradeExecuted",
        "AlertCreated", "AlertTriggered",
    } <= set(report["auditorTypes"])  # fmt: skip
    # as of the first acceptance, the log says what alice's screen showed while it rested
    as_of = (Decimal(report["asOfQuote"]["available"]), Decimal(report["asOfQuote"]["reserved"]))
    assert as_of == resting[quote]
    shots = ("web-main-alice-resting.png", "web-main-alice-filled.png", "web-main-bob-filled.png")
    for shot in shots:
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot
