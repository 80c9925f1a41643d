"""`tradecore up` serves /health for every real service and exits cleanly on Ctrl-C; beside
it, `tradecore market-data` carries the demo's trades from processes of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from infra.settings import Settings
from infra.stack import Stack
from tests.conftest import free_port

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
pytestmark = pytest.mark.e2e


def _position(body: dict[str, Any]) -> int:
    core = next(c for c in body["components"] if c["name"] == "core")
    return int(core["detail"].removeprefix("log position ").replace(",", ""))


def _tradecore(*args: str, gateway_port: int) -> subprocess.Popen[str]:
    """`tradecore *args` with the gateway on `gateway_port`, its output in one pipe."""
    return subprocess.Popen(
        [TRADECORE, *args],
        env={**os.environ, "TRADECORE_HTTP_PORT": str(gateway_port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _first_health(port: int, proc: subprocess.Popen[str]) -> httpx.Response | None:
    """The first answer of /health on `port` while `proc` runs (60 s at most), or None."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        except httpx.TransportError:
            time.sleep(0.3)
    return None


def test_up_reports_every_service_healthy_and_stops_cleanly_on_ctrl_c() -> None:
    Stack(Settings(env="test"), report=lambda _: None).up()
    port = free_port()
    proc = _tradecore("up", gateway_port=port)
    try:
        response = _first_health(port, proc)
        assert response is not None, "the gateway never answered"
        body = response.json()
        first = _position(body)
        market_data = _market_data_beside(port)
        later = _position(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json())
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    states = {c["name"]: c for c in body["components"]}
    assert response.status_code == 200 and body["status"] == "ok"
    assert {"gateway", "postgres", "timescaledb", "schema", "redis", "kafka"} <= states.keys()
    assert {"core", "simulator", "relay", "projections"} <= states.keys()
    assert later > first, "the demo market is not trading: the log did not grow"
    assert all(c["state"] == "up" for c in states.values())
    assert states["timescaledb"]["version"].startswith("TimescaleDB 2.")
    assert proc.returncode == 0
    assert "Tradecore stopped" in output
    assert "demo market stopped" in output and "Traceback" not in output
    # The stack was already up, so this run started nothing and stops nothing.
    assert "stopping the services" not in output
    assert all(s.pid() is not None for s in Stack(Settings(env="test"), lambda _: None).services)
    assert market_data["trade"]["channel"] == "trades.BTC-USD"
    assert market_data["refusal"]["code"] == "commands_not_served"
    assert market_data["health"] == 200
    assert market_data["returncode"] == 0, market_data["output"]
    assert "Traceback" not in market_data["output"]
    assert market_data["left"] == [], "market-data processes outlived Ctrl-C"


def _market_data_beside(gateway_port: int) -> dict[str, Any]:
    """`tradecore market-data --procs 2` beside the running demo: a subscriber on its port
    gets the demo's trades, a command there is refused, and Ctrl-C stops every process."""
    port = free_port()
    proc = _tradecore("market-data", "--procs", "2", "--port", str(port), gateway_port=gateway_port)
    seen: dict[str, Any] = {}
    try:
        health = _first_health(port, proc)
        assert health is not None, "the market-data processes never answered"
        seen["health"] = health.status_code
        children = subprocess.run(  # the servers, not multiprocessing's resource tracker
            ["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert len(children) == 2, children
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
            ws.send(json.dumps({"op": "subscribe", "id": 1, "channel": "trades.BTC-USD"}))
            ws.send(json.dumps({"op": "place_order", "id": 2, "account_id": "demo-1",
                                "order": {"symbol": "BTC-USD", "side": "buy", "price": "1.00",
                                          "quantity": "1"}}))  # fmt: skip
            until = time.monotonic() + 30
            while time.monotonic() < until and not {"trade", "refusal"} <= seen.keys():
                message = json.loads(ws.recv(timeout=30))
                if message.get("type") == "trade":
                    seen.setdefault("trade", message)
                elif message.get("type") == "error" and message.get("id") == 2:
                    seen["refusal"] = message
        proc.send_signal(signal.SIGINT)
        seen["output"], _ = proc.communicate(timeout=60)
        seen["returncode"] = proc.returncode
        seen["left"] = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen
