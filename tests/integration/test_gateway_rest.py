"""The gateway on the real PostgreSQL, Redis and core: users, tokens, commands, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from gateway.ports import Role, StoredResponse, User
from gateway.services import GatewayConfig
from gateway.tokens import TokenConfig, TokenIssuer
from infra.auth_store import RedisIdempotencyStore, RedisTokenRevocations
from infra.ratelimit import RedisRateLimiter
from infra.settings import Settings
from infra.users import PostgresUserDirectory
from tradecore.bootstrap import build_gateway

pytestmark = pytest.mark.integration

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORD = "integration-password"
LISTING = {
    "symbol": "BTC-USD", "base": "BTC", "quote": "USD", "base_decimals": 8,
    "quote_decimals": 4, "tick_size": "0.01", "lot_size": "0.01", "min_qty": "0.01",
    "max_qty": "100", "reference_price": "30000.00", "price_band_bps": 1000,
    "maker_fee_bps": 10, "taker_fee_bps": 20,
}  # fmt: skip
ALICE = User("alice", Role.TRADER, frozenset({"alice-1"}))
BUY = {"symbol": "BTC-USD", "side": "buy", "price": "30000.00", "quantity": "0.5"}


def add_users(dsn: str) -> str:
    """alice and bob (traders), auditor, admin; returns a bot API key as 'id:secret'."""

    async def run() -> str:
        users = PostgresUserDirectory(dsn, hasher=FAST_HASHER)
        await users.open()
        try:
            await users.add("alice", Role.TRADER, ["alice-1"], PASSWORD)
            await users.add("bob", Role.TRADER, ["bob-1"], PASSWORD)
            await users.add("auditor", Role.AUDITOR, [], PASSWORD)
            await users.add("admin", Role.ADMIN, [], PASSWORD)
            key = await users.add_api_key("alice")
            return f"{key.key_id}:{key.secret}"
        finally:
            await users.close()

    return asyncio.run(run())


def event_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])


def login(client: TestClient, username: str) -> dict[str, str]:
    data = {"grant_type": "password", "username": username, "password": PASSWORD}
    response = client.post("/auth/token", data=data)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Gateway:
    def __init__(self, client: TestClient, dsn: str, api_key: str, prefix: str) -> None:
        self.client = client
        self.dsn = dsn
        self.api_key = api_key
        self.prefix = prefix

    def post(self, path: str, user: str, body: Any = None, **kw: Any) -> Any:
        headers = {**bearer(login(self.client, user)["access_token"]), **kw.pop("headers", {})}
        return self.client.post(path, json=body, headers=headers, **kw)


@pytest.fixture
def gateway(migrated_database: str, settings: Settings) -> Iterator[Gateway]:
    api_key = add_users(migrated_database)
    prefix = f"test:{uuid.uuid4().hex}:"
    app = build_gateway(
        Settings(env="test", demo_market=False, read_side=False),
        dsn=migrated_database,
        redis_prefix=prefix,
        config=GatewayConfig(rate_limit=5, rate_window_s=30, login_limit=100),
        hasher=FAST_HASHER,
    )
    with TestClient(app) as client:
        gw = Gateway(client, migrated_database, api_key, prefix)
        gw.post("/instruments", "admin", LISTING)
        for account in ("alice-1", "bob-1"):
            gw.post("/accounts", "admin", {"account_id": account})
            gw.post(f"/accounts/{account}/deposits", "admin", {"asset": "USD", "amount": "100000"})
            gw.post(f"/accounts/{account}/deposits", "admin", {"asset": "BTC", "amount": "10"})
        yield gw


def test_a_trader_signs_in_places_an_order_and_its_events_are_in_the_log(
    gateway: Gateway,
) -> None:
    before = event_count(gateway.dsn)
    response = gateway.post("/accounts/alice-1/orders", "alice", BUY)
    body = response.json()
    assert body["outcome"] == "accepted"
    positions = [e["position"] for e in body["events"]]
    assert positions == list(range(before + 1, before + 1 + len(positions)))
    with psycopg.connect(gateway.dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT command_id FROM events WHERE notification_id = ANY(%s)", (positions,)
        ).fetchall()
    assert rows == [(body["command_id"],)]


def test_a_bot_signs_in_with_its_api_key_and_trades_on_its_owners_account(
    gateway: Gateway,
) -> None:
    key_id, secret = gateway.api_key.split(":")
    grant = {"grant_type": "client_credentials", "client_id": key_id, "client_secret": secret}
    token = gateway.client.post("/auth/token", data=grant).json()["access_token"]
    response = gateway.client.post("/accounts/alice-1/orders", json=BUY, headers=bearer(token))
    assert response.json()["outcome"] == "accepted"


def test_forged_expired_revoked_and_cross_account_requests_write_nothing(
    gateway: Gateway,
) -> None:
    alice = login(gateway.client, "alice")
    gateway.client.post("/auth/logout", headers=bearer(alice["access_token"]))
    forged, _ = TokenIssuer(TokenConfig(secret="x" * 40)).access(ALICE, None)
    expired, _ = TokenIssuer(
        TokenConfig(secret=Settings(env="test").secret_key.get_secret_value()),
        clock=lambda: 1_000_000.0,
    ).access(ALICE, None)
    bob = login(gateway.client, "bob")["access_token"]
    before = event_count(gateway.dsn)
    attempts = {
        "token_revoked": ("/accounts/alice-1/orders", alice["access_token"]),
        "invalid_token": ("/accounts/alice-1/orders", forged),
        "token_expired": ("/accounts/alice-1/orders", expired),
        "account_forbidden": ("/accounts/alice-1/orders", bob),
    }
    for code, (path, token) in attempts.items():
        response = gateway.client.post(path, json=BUY, headers=bearer(token))
        assert response.status_code in (401, 403)
        assert response.json()["error"]["code"] == code
    assert event_count(gateway.dsn) == before


def test_malformed_float_and_oversized_bodies_write_nothing(gateway: Gateway) -> None:
    headers = {
        **bearer(login(gateway.client, "alice")["access_token"]),
        "Content-Type": "application/json",
    }
    before = event_count(gateway.dsn)
    bodies = {
        "malformed_json": b"{nope",
        "float_not_allowed": b'{"symbol":"BTC-USD","side":"buy","price":3e4,"quantity":"1"}',
        "payload_too_large": b'{"symbol":"' + b"B" * 70_000 + b'"}',
    }
    for code, content in bodies.items():
        response = gateway.client.post("/accounts/alice-1/orders", content=content, headers=headers)
        assert response.json()["error"]["code"] == code
    assert event_count(gateway.dsn) == before


def test_numbers_beyond_the_kernels_range_and_nul_bytes_are_refused_with_a_reason(
    gateway: Gateway,
) -> None:
    before = event_count(gateway.dsn)
    headers = bearer(login(gateway.client, "alice")["access_token"])
    order = {
        "symbol": "BTC-USD",
        "side": "buy",
        "price": "1" * 24 + "." + "1" * 18,
        "quantity": "1",
    }
    response = gateway.client.post("/accounts/alice-1/orders", json=order, headers=headers)
    assert response.status_code == 422
    assert "38 significant digits" in response.text
    nul = {"grant_type": "password", "username": "ali\x00ce", "password": PASSWORD}
    response = gateway.client.post("/auth/token", data=nul)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert event_count(gateway.dsn) == before


def test_a_reused_refresh_token_revokes_the_login_in_redis(gateway: Gateway) -> None:
    first = login(gateway.client, "alice")
    grant = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    rotated = gateway.client.post("/auth/token", data=grant)
    assert rotated.status_code == 200
    reused = gateway.client.post("/auth/token", data=grant)
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    me = gateway.client.get("/auth/me", headers=bearer(rotated.json()["access_token"]))
    assert me.status_code == 401


def test_an_idempotency_key_replays_the_first_response_from_redis(gateway: Gateway) -> None:
    token = login(gateway.client, "alice")["access_token"]
    headers = {**bearer(token), "Idempotency-Key": "retry-me"}
    first = gateway.client.post("/accounts/alice-1/orders", json=BUY, headers=headers)
    before = event_count(gateway.dsn)
    again = gateway.client.post("/accounts/alice-1/orders", json=BUY, headers=headers)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert event_count(gateway.dsn) == before


def test_the_per_user_rate_limit_answers_429_with_retry_after(gateway: Gateway) -> None:
    token = login(gateway.client, "auditor")["access_token"]
    statuses = [gateway.client.get("/auth/me", headers=bearer(token)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = gateway.client.get("/auth/me", headers=bearer(token))
    assert 1 <= int(limited.headers["Retry-After"]) <= 30


def test_a_disabled_user_cannot_sign_in_and_its_tokens_are_refused(
    gateway: Gateway, settings: Settings
) -> None:
    token = login(gateway.client, "bob")["access_token"]

    async def disable() -> None:
        users = PostgresUserDirectory(gateway.dsn, hasher=FAST_HASHER)
        await users.open()
        redis = Redis.from_url(settings.redis_dsn)
        try:
            await users.disable("bob")
            await RedisTokenRevocations(redis, gateway.prefix).revoke_user("bob", 60)
        finally:
            await users.close()
            await redis.aclose()

    asyncio.run(disable())
    assert gateway.client.get("/auth/me", headers=bearer(token)).status_code == 401
    data = {"grant_type": "password", "username": "bob", "password": PASSWORD}
    assert gateway.client.post("/auth/token", data=data).status_code == 401


def test_the_redis_stores_keep_their_contracts(settings: Settings) -> None:
    async def run() -> None:
        redis = Redis.from_url(settings.redis_dsn)
        prefix = f"test:{uuid.uuid4().hex}:"
        try:
            revocations = RedisTokenRevocations(redis, prefix)
            await revocations.start_family("f", "r1", 60)
            assert await revocations.rotate("f", "r1", "r2", 60) == "rotated"
            assert await revocations.rotate("f", "r1", "r3", 60) == "reused"
            assert await revocations.rotate("f", "r2", "r4", 60) == "unknown"
            assert await revocations.is_revoked("a", "f", "u", 0)
            assert not await revocations.is_revoked("a", "g", "u", 0)
            store = RedisIdempotencyStore(redis, prefix)
            assert (await store.begin("k", "p", 60)).state == "new"
            assert (await store.begin("k", "p", 60)).state == "in_progress"
            assert (await store.begin("k", "other", 60)).state == "mismatch"
            await store.complete("k", "p", StoredResponse(200, {"a": 1}), 60)
            replay = await store.begin("k", "p", 60)
            assert replay.stored == StoredResponse(200, {"a": 1})
            limiter = RedisRateLimiter(redis, prefix, clock=lambda: 1000.5)
            waits = [await limiter.hit("u", 2, 10) for _ in range(3)]
            assert waits == [None, None, 10]
            # Concurrent asks share one round trip and answer as if made one by one.
            limiter = RedisRateLimiter(redis, prefix, clock=lambda: 2000.5)
            hits = [limiter.hit(key, 2, 10) for key in ("v", "w", "v", "v", "w")]
            assert await asyncio.gather(*hits) == [None, None, None, 10, None]
            assert await limiter.hit("w", 2, 10) == 10
            await revocations.revoke_token("gone", 60)
            checks = [revocations.is_revoked(jti, None, "u", 0) for jti in ("a", "gone", "b")]
            assert await asyncio.gather(*checks) == [False, True, False]
        finally:
            await redis.aclose()

    asyncio.run(run())
