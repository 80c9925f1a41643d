"""REST commands through the gateway into the real core: outcomes, ids, idempotency, roles."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.unit.gateway.conftest import auth
from tests.unit.gateway.fakes import Harness

BUY = {"symbol": "ABC-USD", "side": "buy", "price": "100.00", "quantity": "2"}
DEPOSIT = {"asset": "USD", "amount": "1"}


def place(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/accounts/alice-1/orders", json={**BUY, **body}, headers=headers)


def test_an_accepted_order_answers_with_its_events_and_their_log_positions(
    client: TestClient, harness: Harness
) -> None:
    response = place(client, auth(client, "alice"), client_order_id="c1")
    body = response.json()
    assert response.status_code == 200
    assert body["outcome"] == "accepted" and body["reason"] is None
    assert [e["event"]["event_type"] for e in body["events"]] == ["OrderAccepted", "OrderRested"]
    assert [e["position"] for e in body["events"]] == [r.position for r in harness.store.rows[-2:]]
    assert body["events"][0]["event"]["order_id"] == body["order_id"]
    assert body["events"][0]["event"]["timestamp_ns"] == 1_700_000_000_000_000_000


def test_a_rejected_order_gives_the_machine_readable_reason(client: TestClient) -> None:
    response = place(client, auth(client, "alice"), price="100.005")
    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    assert response.json()["reason"] == "tick_size"


def test_a_retry_with_the_same_client_order_id_returns_the_first_outcome_and_writes_nothing(
    client: TestClient, harness: Harness
) -> None:
    headers = auth(client, "alice")
    first = place(client, headers, client_order_id="same").json()
    before = harness.fingerprint()
    again = place(client, headers, client_order_id="same").json()
    assert again["duplicate"] is True
    assert again["order_id"] == first["order_id"]
    assert [e["event"] for e in again["events"]] == [e["event"] for e in first["events"]]
    assert harness.fingerprint() == before


def test_a_retry_with_the_same_idempotency_key_replays_the_first_response(
    client: TestClient, harness: Harness
) -> None:
    headers = {**auth(client, "alice"), "Idempotency-Key": "k-1"}
    first = place(client, headers)
    before = harness.fingerprint()
    again = place(client, headers)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert harness.fingerprint() == before


def test_an_idempotency_key_reused_for_another_request_is_refused(
    client: TestClient, harness: Harness
) -> None:
    headers = {**auth(client, "alice"), "Idempotency-Key": "k-2"}
    place(client, headers)
    before = harness.fingerprint()
    response = place(client, headers, quantity="3")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert harness.fingerprint() == before


def test_the_correlation_id_header_is_carried_by_the_command_and_its_events(
    client: TestClient,
) -> None:
    headers = {**auth(client, "alice"), "X-Correlation-Id": "trace-42"}
    body = place(client, headers).json()
    assert body["correlation_id"] == "trace-42"
    assert {e["event"]["correlation_id"] for e in body["events"]} == {"trace-42"}
    assert {e["event"]["command_id"] for e in body["events"]} == {body["command_id"]}


def test_a_trader_amends_cancels_and_cancels_all_of_its_orders(client: TestClient) -> None:
    headers = auth(client, "alice")
    order_id = place(client, headers).json()["order_id"]
    amended = client.patch(
        f"/accounts/alice-1/orders/{order_id}", json={"new_quantity": "1"}, headers=headers
    ).json()
    assert [e["event"]["event_type"] for e in amended["events"]] == ["OrderAmended"]
    listed = client.get("/accounts/alice-1/orders", headers=headers).json()
    assert [(o["order_id"], o["remaining_quantity"]) for o in listed] == [(order_id, "1")]
    canceled = client.delete(f"/accounts/alice-1/orders/{order_id}", headers=headers).json()
    assert canceled["events"][0]["event"]["reason"] == "requested"
    place(client, headers)
    place(client, headers)
    swept = client.delete("/accounts/alice-1/orders", headers=headers).json()
    assert [e["event"]["reason"] for e in swept["events"]] == ["cancel_all", "cancel_all"]
    assert client.get("/accounts/alice-1/orders", headers=headers).json() == []


def test_canceling_an_unknown_order_is_a_rejection_with_its_reason(client: TestClient) -> None:
    response = client.delete("/accounts/alice-1/orders/nope", headers=auth(client, "alice"))
    assert response.json()["outcome"] == "rejected"
    assert response.json()["reason"] == "unknown_order"


def test_balances_show_what_an_order_reserves(client: TestClient) -> None:
    headers = auth(client, "alice")
    place(client, headers)
    listed = client.get("/accounts/alice-1/balances", headers=headers).json()
    balances = {b["asset"]: b for b in listed}
    # 2 lots at 100.00 plus the worst-case fee (20 bps, rounded up per lot): 2 x 100.20
    assert balances["USD"]["reserved"] == "200.40"
    assert balances["USD"]["available_atoms"] == 10_000_000 - 20_040


def test_a_trader_cannot_act_on_or_read_another_traders_account(
    client: TestClient, harness: Harness
) -> None:
    headers = auth(client, "alice")
    before = harness.fingerprint()
    writes = [
        client.post("/accounts/bob-1/orders", json=BUY, headers=headers),
        client.delete("/accounts/bob-1/orders", headers=headers),
        client.delete("/accounts/bob-1/orders/x", headers=headers),
        client.patch("/accounts/bob-1/orders/x", json={"new_price": "99"}, headers=headers),
    ]
    reads = [
        client.get("/accounts/bob-1/orders", headers=headers),
        client.get("/accounts/bob-1/balances", headers=headers),
    ]
    assert [r.status_code for r in writes + reads] == [403] * 6
    assert {r.json()["error"]["code"] for r in writes + reads} == {"account_forbidden"}
    assert harness.fingerprint() == before


def test_an_auditor_reads_every_account_and_the_event_log_but_changes_nothing(
    client: TestClient, harness: Harness
) -> None:
    headers = auth(client, "auditor")
    assert client.get("/accounts/bob-1/balances", headers=headers).status_code == 200
    log = client.get("/events", params={"after": 0, "limit": 3}, headers=headers).json()
    assert [e["position"] for e in log] == [1, 2, 3]
    assert log[0]["event_type"] == "InstrumentListed"
    before = harness.fingerprint()
    refused = [
        client.post("/accounts/bob-1/orders", json=BUY, headers=headers),
        client.post("/accounts/bob-1/deposits", json=DEPOSIT, headers=headers),
        client.post("/instruments/ABC-USD/halt", headers=headers),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert harness.fingerprint() == before


def test_a_trader_may_not_read_the_event_log_or_book_funds(client: TestClient) -> None:
    headers = auth(client, "alice")
    assert client.get("/events", headers=headers).status_code == 403
    deposit = client.post("/accounts/alice-1/deposits", json=DEPOSIT, headers=headers)
    assert deposit.status_code == 403


def test_an_admin_books_deposits_and_withdrawals_and_halts_and_resumes_trading(
    client: TestClient,
) -> None:
    admin = auth(client, "admin")
    deposit = client.post(
        "/accounts/bob-1/deposits", json={"asset": "USD", "amount": "10.50"}, headers=admin
    ).json()
    assert deposit["events"][0]["event"]["amount_atoms"] == 1050
    too_much = client.post(
        "/accounts/bob-1/withdrawals", json={"asset": "USD", "amount": "1000000"}, headers=admin
    ).json()
    assert (too_much["outcome"], too_much["reason"]) == ("rejected", "insufficient_funds")
    assert client.post("/instruments/ABC-USD/halt", headers=admin).json()["outcome"] == "accepted"
    halted = place(client, auth(client, "alice")).json()
    assert halted["reason"] == "trading_halted"
    assert client.post("/instruments/ABC-USD/resume", headers=admin).json()["outcome"] == "accepted"
    assert [i["status"] for i in client.get("/instruments", headers=admin).json()] == ["trading"]


def test_an_admin_lists_an_instrument_and_opens_an_account(client: TestClient) -> None:
    admin = auth(client, "admin")
    listing = {
        "symbol": "XYZ-USD", "base": "XYZ", "quote": "USD", "base_decimals": 2,
        "quote_decimals": 2, "tick_size": "0.01", "lot_size": "1", "min_qty": "1",
        "max_qty": "100", "reference_price": "5.00", "price_band_bps": 500,
        "maker_fee_bps": 0, "taker_fee_bps": 10,
    }  # fmt: skip
    assert client.post("/instruments", json=listing, headers=admin).json()["outcome"] == "accepted"
    opened = client.post("/accounts", json={"account_id": "carol-1"}, headers=admin).json()
    assert opened["events"][0]["event"]["event_type"] == "AccountOpened"
    again = client.post("/accounts", json={"account_id": "carol-1"}, headers=admin).json()
    assert again["reason"] == "account_exists"
