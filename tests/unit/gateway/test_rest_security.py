"""Refused requests: bad tokens, bad bodies, too many requests. Each writes nothing."""

from __future__ import annotations

import asyncio
import json

import jwt
from fastapi.testclient import TestClient

from gateway.body import BodyGuard
from gateway.services import GatewayConfig
from gateway.tokens import TokenConfig, TokenIssuer
from tests.unit.gateway.conftest import auth, login
from tests.unit.gateway.fakes import ALICE, SECRET, Harness

BUY = {"symbol": "ABC-USD", "side": "buy", "price": "100.00", "quantity": "1"}


def _refused(
    client: TestClient, harness: Harness, headers: dict[str, str], status: int, code: str
) -> None:
    before = harness.fingerprint()
    response = client.post("/accounts/alice-1/orders", json=BUY, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert harness.fingerprint() == before


def test_a_request_without_a_token_is_401(client: TestClient, harness: Harness) -> None:
    _refused(client, harness, {}, 401, "not_authenticated")


def test_a_token_signed_with_another_key_is_refused(client: TestClient, harness: Harness) -> None:
    forged, _ = TokenIssuer(TokenConfig(secret="not-the-server-secret-at-all-0123456789")).access(
        ALICE, None
    )
    _refused(client, harness, {"Authorization": f"Bearer {forged}"}, 401, "invalid_token")


def test_a_token_with_its_claims_edited_is_refused(client: TestClient, harness: Harness) -> None:
    token = login(client, "bob")["access_token"]
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["acc"] = ["alice-1"]
    edited = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    headers = {"Authorization": f"Bearer {header}.{edited}.{signature}"}
    _refused(client, harness, headers, 401, "invalid_token")


def test_an_unsigned_token_is_refused(client: TestClient, harness: Harness) -> None:
    claims = jwt.decode(login(client, "alice")["access_token"], options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    _refused(client, harness, {"Authorization": f"Bearer {unsigned}"}, 401, "invalid_token")


def test_an_expired_token_is_refused(client: TestClient, harness: Harness) -> None:
    old, _ = TokenIssuer(TokenConfig(secret=SECRET), clock=lambda: 1_000_000.0).access(ALICE, None)
    _refused(client, harness, {"Authorization": f"Bearer {old}"}, 401, "token_expired")


def test_a_refresh_token_is_not_an_access_token(client: TestClient, harness: Harness) -> None:
    refresh = login(client, "alice")["refresh_token"]
    _refused(client, harness, {"Authorization": f"Bearer {refresh}"}, 401, "invalid_token")


def test_a_token_revoked_by_logout_is_refused(client: TestClient, harness: Harness) -> None:
    headers = auth(client, "alice")
    assert client.post("/auth/logout", headers=headers).status_code == 204
    _refused(client, harness, headers, 401, "token_revoked")


def test_every_token_of_a_disabled_user_is_refused(client: TestClient, harness: Harness) -> None:
    headers = auth(client, "alice")
    harness.revocations.users["alice"] = 2**40
    _refused(client, harness, headers, 401, "token_revoked")


def test_a_wrong_password_gets_no_token(client: TestClient) -> None:
    response = client.post(
        "/auth/token", data={"grant_type": "password", "username": "alice", "password": "guess"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_an_api_key_signs_a_bot_in_with_client_credentials(
    client: TestClient, harness: Harness
) -> None:
    harness.users.keys["tck_1"] = ("alice", "s3cret")
    grant = {"grant_type": "client_credentials", "client_id": "tck_1", "client_secret": "s3cret"}
    body = client.post("/auth/token", data=grant).json()
    assert body["refresh_token"] is None
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"username": "alice", "role": "trader", "accounts": ["alice-1"]}
    wrong = client.post("/auth/token", data={**grant, "client_secret": "nope"})
    assert wrong.status_code == 401


def test_a_refresh_token_is_spent_once_and_its_reuse_revokes_the_login(
    client: TestClient, harness: Harness
) -> None:
    first = login(client, "alice")
    grant = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = client.post("/auth/token", data=grant)
    assert second.status_code == 200
    reused = client.post("/auth/token", data=grant)
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    newest = {"grant_type": "refresh_token", "refresh_token": second.json()["refresh_token"]}
    assert client.post("/auth/token", data=newest).status_code == 401
    for token in (first["access_token"], second.json()["access_token"]):
        _refused(client, harness, {"Authorization": f"Bearer {token}"}, 401, "token_revoked")


def test_a_float_is_refused_naming_its_field_and_nothing_is_written(
    client: TestClient, harness: Harness
) -> None:
    before = harness.fingerprint()
    response = client.post(
        "/accounts/alice-1/orders",
        content=b'{"symbol":"ABC-USD","side":"buy","price":100.5,"quantity":"1"}',
        headers={**auth(client, "alice"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "float_not_allowed",
        "message": "price: binary floats are refused: send a decimal string",
        "details": {"field": "price", "reason": "float_not_allowed"},
    }
    assert harness.fingerprint() == before


def test_malformed_json_and_nan_are_refused_before_any_route(
    client: TestClient, harness: Harness
) -> None:
    headers = {**auth(client, "alice"), "Content-Type": "application/json"}
    before = harness.fingerprint()
    broken = client.post("/accounts/alice-1/orders", content=b'{"symbol": ', headers=headers)
    nan = client.post("/accounts/alice-1/orders", content=b'{"price": NaN}', headers=headers)
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_json")
    assert (nan.status_code, nan.json()["error"]["code"]) == (400, "float_not_allowed")
    assert harness.fingerprint() == before


def test_invalid_fields_are_named(client: TestClient, harness: Harness) -> None:
    headers = auth(client, "alice")
    before = harness.fingerprint()
    cases = {
        "not_a_decimal": ({**BUY, "price": "1e5"}, "price"),
        "missing_field": ({"side": "buy", "price": "1", "quantity": "1"}, "symbol"),
        "unknown_field": ({**BUY, "leverage": "10"}, "leverage"),
        "invalid_value": ({**BUY, "side": "hold"}, "side"),
        "wrong_type": ({**BUY, "post_only": "yes"}, "post_only"),
    }
    for code, (body, field) in cases.items():
        response = client.post("/accounts/alice-1/orders", json=body, headers=headers)
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["details"]["field"]) == (
            422,
            code,
            field,
        ), body
    assert harness.fingerprint() == before


def test_an_oversized_body_is_refused_before_it_is_read(
    client: TestClient, harness: Harness
) -> None:
    before = harness.fingerprint()
    padding = "x" * (64 * 1024)
    response = client.post(
        "/accounts/alice-1/orders",
        json={**BUY, "client_order_id": padding},
        headers=auth(client, "alice"),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert harness.fingerprint() == before


def test_a_streamed_body_is_cut_off_at_the_limit_without_a_content_length() -> None:
    reached: list[bool] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append(True)

    sent: list[dict[str, object]] = []
    chunks = [{"type": "http.request", "body": b"[" * 600, "more_body": True}] * 3

    async def receive() -> dict[str, object]:
        return chunks.pop()

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/x"}
    asyncio.run(BodyGuard(app, max_body=1000)(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 413
    assert reached == []


def test_too_many_requests_get_429_with_retry_after() -> None:
    harness = Harness(GatewayConfig(rate_limit=3, rate_window_s=7, login_limit=100))
    with TestClient(harness.app) as client:
        headers = auth(client, "alice")
        statuses = [client.get("/auth/me", headers=headers).status_code for _ in range(4)]
        limited = client.get("/auth/me", headers=headers)
    assert statuses == [200, 200, 200, 429]
    assert limited.headers["Retry-After"] == "7"
    assert limited.json()["error"]["code"] == "rate_limited"


def test_unknown_paths_answer_with_the_same_error_shape(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}
