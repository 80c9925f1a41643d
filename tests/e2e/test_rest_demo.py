"""`tradecore up` with the demo: alice signs in with the printed password, trades, sees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from infra.settings import Settings
from infra.stack import Stack
from tests.conftest import free_port

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
pytestmark = pytest.mark.e2e


def test_a_demo_trader_signs_in_places_an_order_and_sees_it_open() -> None:
    Stack(Settings(env="test"), report=lambda _: None).up()
    port = free_port()
    proc = subprocess.Popen(
        [TRADECORE, "up"],
        env={**os.environ, "TRADECORE_HTTP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        token = None
        deadline = time.monotonic() + 90
        while token is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.post(
                    f"{base}/auth/token",
                    data={"grant_type": "password", "username": "alice", "password": "alice-demo"},
                    timeout=10,
                )
                if response.status_code == 200:
                    token = response.json()["access_token"]
                else:
                    time.sleep(0.5)
            except httpx.TransportError:
                time.sleep(0.3)
        assert token is not None, "alice could not sign in"
        headers = {"Authorization": f"Bearer {token}"}
        instruments = httpx.get(f"{base}/instruments", headers=headers, timeout=10).json()
        btc = next(i for i in instruments if i["symbol"] == "BTC-USD")
        # A little under the market (inside the price band), post-only: it rests.
        tick = Decimal(btc["tick_size"])
        price = (Decimal(btc["last_price"]) * Decimal("0.98") / tick).to_integral_value() * tick
        order = httpx.post(
            f"{base}/accounts/alice-1/orders",
            json={
                "symbol": "BTC-USD",
                "side": "buy",
                "price": str(price),
                "quantity": btc["lot_size"],
                "post_only": True,
            },
            headers=headers,
            timeout=10,
        ).json()
        opened = httpx.get(f"{base}/accounts/alice-1/orders", headers=headers, timeout=10).json()
        balances = httpx.get(f"{base}/accounts/alice-1/balances", headers=headers, timeout=10)
        other = httpx.get(f"{base}/accounts/bob-1/balances", headers=headers, timeout=10)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert order["outcome"] == "accepted", order
    assert order["order_id"] in {o["order_id"] for o in opened}
    assert {b["asset"] for b in balances.json()} >= {"USD", "BTC"}
    assert other.status_code == 403
    assert "demo logins" in output and proc.returncode == 0
