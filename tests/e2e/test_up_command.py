"""`tradecore up` serves /health for every real service and exits cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from infra.stack import Stack
from tests.conftest import free_port

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
pytestmark = pytest.mark.e2e


def _position(body: dict[str, Any]) -> int:
    core = next(c for c in body["components"] if c["name"] == "core")
    return int(core["detail"].removeprefix("log position ").replace(",", ""))


def test_up_reports_every_service_healthy_and_stops_cleanly_on_ctrl_c() -> None:
    Stack(Settings(env="test"), report=lambda _: None).up()
    port = free_port()
    proc = subprocess.Popen(
        [TRADECORE, "up"],
        env={**os.environ, "TRADECORE_HTTP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                body = response.json()
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert body is not None, "the gateway never answered"
        first = _position(body)
        time.sleep(2)
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
