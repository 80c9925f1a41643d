"""The npm `graphql-ws` client subscribes to live trades on a running `tradecore up`
(uvicorn, the demo market trading, the fan-out publishing through Redis)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from infra.stack import Stack
from tests.conftest import free_port

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
JS = Path(__file__).with_name("js")
pytestmark = pytest.mark.e2e

TRADES = 'subscription { trades(symbol: "BTC-USD") { channel seq type data } }'


def _npm_client() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (JS / "node_modules" / "graphql-ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)


def _node(url: str, token: str, query: str, count: int) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        ["node", "subscribe.mjs", url, token, query, str(count)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, lines


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    _npm_client()
    Stack(Settings(env="test"), report=lambda _: None).up()
    port = free_port()
    proc = subprocess.Popen(
        [TRADECORE, "up"],
        env={**os.environ, "TRADECORE_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _login(base: str, username: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            response = httpx.post(
                f"http://{base}/auth/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": f"{username}-demo",
                },
                timeout=10,
            )
            if response.status_code == 200:
                token: str = response.json()["access_token"]
                return token
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{username} could not sign in")


def test_the_npm_graphql_ws_client_receives_live_trades(server: str) -> None:
    token = _login(server, "alice")
    code, results = _node(f"ws://{server}/graphql", token, TRADES, 3)
    assert code == 0, results
    trades = [r["data"]["trades"] for r in results]
    assert all(t["channel"] == "trades.BTC-USD" for t in trades)
    assert trades[0]["type"] == "snapshot"
    assert {t["type"] for t in trades[1:]} == {"trade"}
    seqs = [int(t["seq"]) for t in trades]
    assert seqs == sorted(seqs)


def test_the_npm_client_with_a_forged_token_is_closed_before_subscribing(server: str) -> None:
    _login(server, "alice")  # the server is up
    code, results = _node(f"ws://{server}/graphql", "not.a.jwt", TRADES, 1)
    assert code == 2
    assert results == [{"closed": 4403, "reason": "Forbidden"}]


def test_the_npm_client_cannot_follow_another_traders_orders(server: str) -> None:
    token = _login(server, "bob")
    query = 'subscription { myOrders(accountId: "alice-1") { seq } }'
    code, results = _node(f"ws://{server}/graphql", token, query, 1)
    assert code == 0, results  # the refusal is the subscription's one result
    assert results[0]["errors"][0]["extensions"]["code"] == "account_forbidden"
    assert results[0].get("data") is None
