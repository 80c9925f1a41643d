"""The order-entry lane (gateway/lane.py) answers exactly as the FastAPI route would.

Each request is sent through both doors of two identical gateways: as `application/json` the
lane takes it; with a charset parameter the lane lets FastAPI answer. Status, headers that
matter and body bytes must be the same, and the lane must really have taken the first one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

import gateway.lane
from gateway.services import GatewayConfig
from tests.unit.gateway.conftest import auth
from tests.unit.gateway.fakes import Harness

BUY = {"symbol": "ABC-USD", "side": "buy", "price": "100.00", "quantity": "2"}
LANE = "application/json"
FASTAPI = "application/json; charset=utf-8"


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    submit = gateway.lane.submit_order

    async def counted(*args: Any) -> Any:
        calls.append(args[2])  # the account
        return await submit(*args)

    monkeypatch.setattr(gateway.lane, "submit_order", counted)
    return calls


Request = Callable[[TestClient, str], Any]


def both_doors(request: Request, config: GatewayConfig | None = None) -> tuple[Any, Any]:
    answers = []
    for kind in (LANE, FASTAPI):
        with TestClient(Harness(config).app) as client:
            answers.append(request(client, kind))
    return answers[0], answers[1]


def post(client: TestClient, kind: str, headers: dict[str, str], body: Any) -> Any:
    return client.post(
        "/accounts/alice-1/orders",
        content=body if isinstance(body, bytes) else json.dumps(body),
        headers={**headers, "Content-Type": kind},
    )


def same(lane: Any, route: Any) -> None:
    assert lane.status_code == route.status_code
    assert lane.content == route.content
    for name in ("content-type", "content-length", "x-correlation-id", "retry-after",
                 "www-authenticate"):  # fmt: skip
        assert lane.headers.get(name) == route.headers.get(name), name


def test_an_order_through_the_lane_gets_the_routes_answer(lane_calls: list[str]) -> None:
    def request(client: TestClient, kind: str) -> Any:
        headers = {**auth(client, "alice"), "X-Correlation-Id": "corr-1"}
        return post(client, kind, headers, {**BUY, "client_order_id": "c1"})

    lane, route = both_doors(request)
    assert lane.status_code == 200 and lane.json()["outcome"] == "accepted"
    assert lane.headers["x-correlation-id"] == "corr-1"
    same(lane, route)
    assert lane_calls == ["alice-1"]  # the lane answered the first, FastAPI the second


def test_a_rejected_order_through_the_lane_gets_the_routes_answer(lane_calls: list[str]) -> None:
    lane, route = both_doors(
        lambda client, kind: post(
            client, kind, auth(client, "alice"), {**BUY, "price": "1.005", "client_order_id": "c"}
        )
    )
    assert lane.json()["reason"] == "tick_size"
    same(lane, route)
    assert lane_calls == ["alice-1"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no_token", 401, "not_authenticated"),
        ("forged_token", 401, "invalid_token"),
        ("someone_elses_account", 403, "account_forbidden"),
        ("auditor", 403, "role_forbidden"),
        ("invalid_field", 422, "invalid_value"),
        ("unknown_field", 422, "unknown_field"),
        ("float", 400, "float_not_allowed"),
        ("malformed", 400, "malformed_json"),
        ("revoked", 401, "token_revoked"),
    ],
)
def test_refusals_are_worded_as_fastapi_words_them_and_write_nothing(
    case: str, status: int, code: str, lane_calls: list[str]
) -> None:
    def request(client: TestClient, kind: str) -> Any:
        headers, body = auth(client, "alice"), dict(BUY)
        if case == "no_token":
            headers = {}
        elif case == "forged_token":
            headers = {"Authorization": headers["Authorization"][:-3] + "abc"}
        elif case == "someone_elses_account":
            headers = auth(client, "bob")
        elif case == "auditor":
            headers = auth(client, "auditor")
        elif case == "invalid_field":
            body["side"] = "sideways"
        elif case == "unknown_field":
            body["colour"] = "red"
        elif case == "revoked":
            assert client.post("/auth/logout", headers=headers).status_code in (200, 204)
        if case == "float":
            return post(client, kind, headers, b'{"symbol": "ABC-USD", "price": 1.5}')
        if case == "malformed":
            return post(client, kind, headers, b'{"symbol": ')
        return post(client, kind, headers, body)

    lane, route = both_doors(request)
    assert (lane.status_code, lane.json()["error"]["code"]) == (status, code)
    same(lane, route)
    assert lane_calls == []


def test_the_rate_limit_counts_lane_orders_once_and_answers_429_alike() -> None:
    config = GatewayConfig(rate_limit=2, rate_window_s=9, login_limit=100)

    def request(client: TestClient, kind: str) -> Any:
        headers = auth(client, "alice")
        answers = [post(client, kind, headers, BUY) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        return answers[-1]

    lane, route = both_doors(request, config)
    assert lane.headers["Retry-After"] == "9"
    same(lane, route)


def test_an_idempotency_key_goes_to_the_route(lane_calls: list[str]) -> None:
    with TestClient(Harness().app) as client:
        headers = {**auth(client, "alice"), "Idempotency-Key": "k-1"}
        first = post(client, LANE, headers, BUY)
        again = post(client, LANE, headers, BUY)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert lane_calls == []
