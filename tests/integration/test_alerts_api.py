"""Price alerts over REST, GraphQL and the live channel, on a whole gateway (real PostgreSQL,
Redis, core and alert evaluator): a trader sees and cancels only its own alerts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.test_gateway_rest import bearer
from tests.integration.test_graphql import PLACE, Api, _order, api, codes

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture

CREATE = """mutation($a: String!, $x: AlertInput!) {
  createAlert(accountId: $a, alert: $x) { outcome reason events { position event } } }"""
CANCEL = """mutation($a: String!, $id: String!) {
  cancelAlert(accountId: $a, alertId: $id) { outcome reason } }"""
ALERTS = """query($a: String) { alerts(accountId: $a) {
  alertId accountId symbol condition level pct windowS status triggerPrice referencePrice } }"""
UP = {"symbol": "BTC-USD", "condition": "crosses_above", "level": "30100.00"}


def rest(api: Api, method: str, path: str, user: str, body: Any = None) -> Any:
    headers = bearer(api.token(user))
    return api.client.request(method, path, json=body, headers=headers)


def created_id(outcome: dict[str, Any]) -> str:
    assert outcome["outcome"] == "accepted", outcome
    alert_id: str = outcome["events"][0]["event"]["alert_id"]
    return alert_id


def test_a_trader_creates_lists_and_cancels_only_its_own_alerts_over_rest(api: Api) -> None:
    alert_id = created_id(rest(api, "POST", "/accounts/alice-1/alerts", "alice", UP).json())
    moves = {"symbol": "BTC-USD", "condition": "moves_pct", "pct": "2.5", "window_s": 600}
    created_id(rest(api, "POST", "/accounts/alice-1/alerts", "alice", moves).json())

    listed = rest(api, "GET", "/accounts/alice-1/alerts", "alice").json()
    assert (listed[0]["alert_id"], listed[0]["level"], listed[0]["status"]) == (
        alert_id,
        "30100.00",
        "active",
    )
    assert (listed[1]["pct"], listed[1]["window_s"], listed[1]["level"]) == ("2.50", 600, None)

    # bob: not his account, so neither listed nor canceled, and nothing is written.
    assert rest(api, "GET", "/accounts/alice-1/alerts", "bob").status_code == 403
    refused = rest(api, "DELETE", f"/accounts/alice-1/alerts/{alert_id}", "bob")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "account_forbidden")
    # through his own account the core refuses it: the alert is not his
    stolen = rest(api, "DELETE", f"/accounts/bob-1/alerts/{alert_id}", "bob").json()
    assert (stolen["outcome"], stolen["reason"]) == ("rejected", "not_alert_owner")
    assert rest(api, "GET", "/accounts/bob-1/alerts", "bob").json() == []

    bad = rest(api, "POST", "/accounts/alice-1/alerts", "alice", {**UP, "level": "30100.001"})
    assert (bad.json()["outcome"], bad.json()["reason"]) == ("rejected", "invalid_level")
    unknown = rest(api, "POST", "/accounts/alice-1/alerts", "alice", {**UP, "symbol": "NO-USD"})
    assert unknown.json()["reason"] == "unknown_symbol"
    floated = rest(api, "POST", "/accounts/alice-1/alerts", "alice", {**UP, "level": 1.5})
    assert (floated.status_code, floated.json()["error"]["code"]) == (400, "float_not_allowed")

    canceled = rest(api, "DELETE", f"/accounts/alice-1/alerts/{alert_id}", "alice").json()
    assert canceled["outcome"] == "accepted"
    again = rest(api, "DELETE", f"/accounts/alice-1/alerts/{alert_id}", "alice").json()
    assert again["reason"] == "already_canceled"
    statuses = [a["status"] for a in rest(api, "GET", "/accounts/alice-1/alerts", "alice").json()]
    assert statuses == ["canceled", "active"]


def test_graphql_alerts_are_the_callers_own_and_mutations_go_through_rest(api: Api) -> None:
    data = api.ok(CREATE, "alice", a="alice-1", x=UP)
    alert_id = created_id(data["createAlert"])
    api.project()
    mine = api.ok(ALERTS, "alice")["alerts"]
    assert [(a["alertId"], a["status"], a["level"]) for a in mine] == [
        (alert_id, "active", "30100.00")
    ]
    assert api.ok(ALERTS, "bob")["alerts"] == []
    assert codes(api.gql(ALERTS, "bob", a="alice-1")) == ["account_forbidden"]
    assert codes(api.gql(CANCEL, "bob", a="alice-1", id=alert_id)) == ["account_forbidden"]
    stolen = api.ok(CANCEL, "bob", a="bob-1", id=alert_id)["cancelAlert"]
    assert (stolen["outcome"], stolen["reason"]) == ("rejected", "not_alert_owner")
    assert [a["alertId"] for a in api.ok(ALERTS, "auditor", a="alice-1")["alerts"]] == [alert_id]
    assert api.ok(CANCEL, "alice", a="alice-1", id=alert_id)["cancelAlert"]["outcome"] == (
        "accepted"
    )
    api.project()
    assert [a["status"] for a in api.ok(ALERTS, "alice")["alerts"]] == ["canceled"]


def test_the_gateways_evaluator_fires_an_alert_once_and_my_alerts_carries_it(api: Api) -> None:
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": api.token("alice")}})
        assert ws.receive_json()["type"] == "connection_ack"
        query = 'subscription { myAlerts(accountId: "alice-1") { channel type data } }'
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        assert ws.receive_json()["payload"]["data"]["myAlerts"]["type"] == "snapshot"

        alert_id = created_id(api.ok(CREATE, "alice", a="alice-1", x=UP)["createAlert"])
        created = ws.receive_json()["payload"]["data"]["myAlerts"]
        assert (created["channel"], created["type"]) == ("alerts.alice-1", "AlertCreated")
        api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30200.00", "0.5"))
        api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30200.00", "0.1"))
        api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30200.00", "0.1"))

        triggered = ws.receive_json()["payload"]["data"]["myAlerts"]  # the evaluator's doing
        assert triggered["type"] == "AlertTriggered"
        assert triggered["data"]["alert_id"] == alert_id
        assert triggered["data"]["price_ticks"] == 3_020_000

    deadline = time.monotonic() + 10
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listed = rest(api, "GET", "/accounts/alice-1/alerts", "alice").json()
        if listed and listed[0]["status"] == "triggered":
            break
        time.sleep(0.1)
    assert [a["status"] for a in listed] == ["triggered"]
    logged = rest(api, "GET", "/events?limit=1000", "auditor").json()
    assert [e["event"]["alert_id"] for e in logged if e["event_type"] == "AlertTriggered"] == [
        alert_id
    ]
