"""GraphQL on a whole gateway (real PostgreSQL, Redis, core): reads from the read models built
from the real log, mutations through the REST handlers, refusals, subscriptions."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from starlette.websockets import WebSocketDisconnect

from gateway.services import GatewayConfig
from gateway.tokens import TokenConfig, TokenIssuer
from infra.settings import Settings
from read_api.live_redis import RedisLiveFeed
from tests.integration.test_gateway_rest import (
    ALICE,
    FAST_HASHER,
    LISTING,
    add_users,
    bearer,
    event_count,
    login,
)
from tests.integration.test_projections import project_from_store
from tradecore.bootstrap import build_gateway

pytestmark = pytest.mark.integration

PORTFOLIO = """query($a: String!) { portfolio(accountId: $a) {
  accountId balances { asset available reserved }
  positions { symbol quantity avgCost realizedPnl lastPrice unrealizedPnl }
  orders { orderId status filledQty fills { tradeId liquidity price quantity fee } } } }"""
PLACE = """mutation($a: String!, $o: OrderInput!, $k: String) {
  placeOrder(accountId: $a, order: $o, idempotencyKey: $k) {
    outcome reason orderId replayed events { position event } } }"""


class Api:
    def __init__(self, client: TestClient, dsn: str) -> None:
        self.client = client
        self.dsn = dsn
        self.tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = login(self.client, user)["access_token"]
        return self.tokens[user]

    def gql(self, document: str, user: str | None = None, token: str | None = None,
            **variables: Any) -> dict[str, Any]:  # fmt: skip
        headers = bearer(token or self.token(user)) if (user or token) else {}
        response = self.client.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def ok(self, document: str, user: str, **variables: Any) -> dict[str, Any]:
        body = self.gql(document, user, **variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def project(self) -> None:
        """Bring the read models up to the log (the runner is off in this gateway)."""
        asyncio.run(project_from_store(self.dsn))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


def _order(side: str, price: str, quantity: str) -> dict[str, str]:
    return {"symbol": "BTC-USD", "side": side, "price": price, "quantity": quantity}


@pytest.fixture
def api(migrated_database: str) -> Iterator[Api]:
    add_users(migrated_database)
    app = build_gateway(
        Settings(env="test", demo_market=False, read_side=False),
        dsn=migrated_database,
        redis_prefix=f"test:{uuid.uuid4().hex}:",
        config=GatewayConfig(rate_limit=1000, rate_window_s=1, login_limit=100),
        hasher=FAST_HASHER,
    )
    with TestClient(app) as client:
        a = Api(client, migrated_database)
        admin = a.token("admin")
        client.post("/instruments", json=LISTING, headers=bearer(admin))
        for account in ("alice-1", "bob-1"):
            for document, variables in (
                ("mutation($a: String!) { openAccount(accountId: $a) { outcome } }", {}),
                (
                    "mutation($a: String!, $s: String!, $m: String!) {"
                    " depositFunds(accountId: $a, asset: $s, amount: $m) { outcome } }",
                    {"s": "USD", "m": "100000"},
                ),
                (
                    "mutation($a: String!, $s: String!, $m: String!) {"
                    " depositFunds(accountId: $a, asset: $s, amount: $m) { outcome } }",
                    {"s": "BTC", "m": "10"},
                ),
            ):
                data = a.ok(document, "admin", a=account, **variables)
                assert next(iter(data.values()))["outcome"] == "accepted"
        yield a


def test_a_graphql_order_goes_through_the_rest_handler_and_its_events_are_logged(
    api: Api,
) -> None:
    before = event_count(api.dsn)
    data = api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30000.00", "0.5"), k="gq-1")
    placed = data["placeOrder"]
    assert placed["outcome"] == "accepted"
    positions = [int(e["position"]) for e in placed["events"]]
    assert positions == list(range(before + 1, before + 1 + len(positions)))
    assert event_count(api.dsn) == before + len(positions)

    again = api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30000.00", "0.5"), k="gq-1")
    assert again["placeOrder"]["replayed"] is True
    assert again["placeOrder"]["orderId"] == placed["orderId"]
    assert event_count(api.dsn) == before + len(positions)


def test_a_refused_graphql_command_keeps_the_rest_code_and_writes_nothing(api: Api) -> None:
    before = event_count(api.dsn)
    body = api.gql(PLACE, "bob", a="alice-1", o=_order("buy", "30000.00", "0.5"))
    assert codes(body) == ["account_forbidden"]
    body = api.gql(PLACE, "alice", a="alice-1", o=_order("buy", "30000.001", "0.5"))
    assert body["data"]["placeOrder"]["reason"] == "tick_size"
    body = api.gql('mutation { haltTrading(symbol: "BTC-USD") { outcome } }', "alice")
    assert codes(body) == ["role_forbidden"]
    assert event_count(api.dsn) == before + 1  # only the tick-size rejection is recorded


def test_the_portfolio_after_a_trade_matches_the_cores_balances_and_shows_pnl(
    api: Api,
) -> None:
    api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30000.00", "0.5"))
    bought = api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30000.00", "0.2"))
    api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30100.00", "0.1"))
    api.project()

    data = api.ok(PORTFOLIO, "alice", a="alice-1")["portfolio"]
    core = api.client.get("/accounts/alice-1/balances", headers=bearer(api.token("alice")))
    assert {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"])) for b in
            data["balances"]} == {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"]))
                                  for b in core.json()}  # fmt: skip
    [position] = data["positions"]
    assert Decimal(position["quantity"]) == Decimal("0.2")
    assert Decimal(position["avgCost"]) == Decimal("30000")
    assert Decimal(position["lastPrice"]) == Decimal("30000")
    assert Decimal(position["unrealizedPnl"]) == 0
    [order] = data["orders"]
    assert order["orderId"] == bought["placeOrder"]["orderId"]
    assert order["status"] == "filled"
    [fill] = order["fills"]
    assert (fill["liquidity"], Decimal(fill["quantity"])) == ("taker", Decimal("0.2"))

    market = api.ok(
        """{ trades(symbol: "BTC-USD") { tradeId price takerAccountId makerAccountId }
             candles(symbol: "BTC-USD", interval: "1m") { open close volume tradeCount }
             orderBook(symbol: "BTC-USD") { asks { price quantity orderCount } bids { price } }
             marketStats(symbol: "BTC-USD") { last volume tradeCount } }""",
        "alice",
    )
    assert market["trades"] == [
        {"tradeId": "1", "price": "30000.00", "takerAccountId": "alice-1", "makerAccountId": None}
    ]
    [candle] = market["candles"]
    assert (Decimal(candle["volume"]), candle["tradeCount"]) == (Decimal("0.2"), 1)
    typed = api.ok(
        """{ candles(symbol: "BTC-USD", interval: "1s") { bucket open high low close volume
               quoteVolume vwap tradeCount firstTradeId lastTradeId }
             candleSeries(symbol: "BTC-USD", interval: "1s") { columns rows } }""",
        "alice",
    )
    series = typed["candleSeries"]
    as_rows = [
        [c[_camel(col)] if col not in ("first_trade_id", "last_trade_id") else
         int(c[_camel(col)]) for col in series["columns"]]
        for c in typed["candles"]
    ]  # fmt: skip
    assert series["rows"] == as_rows
    assert [(Decimal(a["price"]), Decimal(a["quantity"])) for a in market["orderBook"]["asks"]] == [
        (Decimal("30000"), Decimal("0.3")),
        (Decimal("30100"), Decimal("0.1")),
    ]
    assert Decimal(market["marketStats"]["last"]) == Decimal("30000")


def test_forged_expired_and_cross_account_reads_are_refused_over_graphql(api: Api) -> None:
    forged, _ = TokenIssuer(TokenConfig(secret="x" * 40)).access(ALICE, None)
    expired, _ = TokenIssuer(
        TokenConfig(secret=Settings(env="test").secret_key.get_secret_value()),
        clock=lambda: 1_000_000.0,
    ).access(ALICE, None)
    assert codes(api.gql(PORTFOLIO, token=forged, a="alice-1")) == ["invalid_token"]
    assert codes(api.gql(PORTFOLIO, token=expired, a="alice-1")) == ["token_expired"]
    assert codes(api.gql(PORTFOLIO, a="alice-1")) == ["not_authenticated"]
    cross = api.gql(PORTFOLIO, "bob", a="alice-1")
    assert codes(cross) == ["account_forbidden"]
    assert cross["data"] is None
    assert codes(api.gql("{ events { position } }", "alice")) == ["role_forbidden"]


def test_a_depth_and_an_alias_bomb_are_refused_over_http(api: Api) -> None:
    inner = "price"
    for _ in range(12):
        inner = f"fills {{ order {{ {inner} }} }}"
    deep = api.gql(f'{{ portfolio(accountId: "alice-1") {{ orders {{ {inner} }} }} }}', "alice")
    assert "exceeds maximum operation depth" in deep["errors"][0]["message"]
    aliases = " ".join(f"a{i}: instruments {{ symbol }}" for i in range(200))
    wide = api.gql(f"{{ {aliases} }}", "alice")
    assert "aliases" in wide["errors"][0]["message"]


def test_an_auditor_filters_the_log_and_replays_an_account_to_a_past_position(
    api: Api,
) -> None:
    balances_then = api.client.get(
        "/accounts/alice-1/balances", headers=bearer(api.token("alice"))
    ).json()
    head_then = event_count(api.dsn)
    api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30000.00", "0.5"))
    api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30000.00", "0.2"))

    events = api.ok(
        """query($f: EventFilter) { events(filter: $f, limit: 1000) {
             position eventType payload } }""",
        "auditor",
        f={"accountId": "alice-1", "eventTypes": ["TradeExecuted", "FundsDeposited"]},
    )["events"]
    assert [e["eventType"] for e in events] == ["FundsDeposited", "FundsDeposited", "TradeExecuted"]
    assert events[-1]["payload"]["taker_account_id"] == "alice-1"
    later = api.ok(
        "query($p: BigInt) { events(filter: {afterPosition: $p}) { position } }",
        "auditor",
        p=str(head_then),
    )["events"]
    assert [int(e["position"]) for e in later] == list(
        range(head_then + 1, event_count(api.dsn) + 1)
    )

    state = api.ok(
        """query($p: BigInt) { accountState(accountId: "alice-1", position: $p) {
             exists position balances { asset available reserved } openOrders { orderId } } }""",
        "auditor",
        p=str(head_then),
    )["accountState"]
    assert state["exists"] is True
    assert state["openOrders"] == []
    assert {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"])) for b in
            state["balances"]} == {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"]))
                                   for b in balances_then}  # fmt: skip
    before_open = api.ok(
        '{ accountState(accountId: "alice-1", position: "1") { exists balances { asset } } }',
        "auditor",
    )["accountState"]
    assert before_open == {"exists": False, "balances": []}


def test_a_websocket_with_a_bad_token_is_closed_and_a_good_one_receives_live_trades(
    api: Api,
) -> None:
    protocols = ["graphql-transport-ws"]
    with api.client.websocket_connect("/graphql", subprotocols=protocols) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4403

    with api.client.websocket_connect("/graphql", subprotocols=protocols) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": api.token("alice")}})
        assert ws.receive_json()["type"] == "connection_ack"
        query = 'subscription { trades(symbol: "BTC-USD") { channel type data } }'
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        first = ws.receive_json()
        assert first["payload"]["data"]["trades"]["type"] == "snapshot"
        # A real trade: the core commits it, the fan-out publishes it, the feed delivers it.
        api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30000.00", "0.5"))
        api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30000.00", "0.2"))
        message = ws.receive_json()
        assert message["type"] == "next"
        trade = message["payload"]["data"]["trades"]
        assert (trade["channel"], trade["type"]) == ("trades.BTC-USD", "trade")


def test_a_trader_cannot_subscribe_to_another_accounts_orders_over_the_websocket(
    api: Api,
) -> None:
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": api.token("bob")}})
        assert ws.receive_json()["type"] == "connection_ack"
        query = 'subscription { myOrders(accountId: "alice-1") { seq } }'
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        message = ws.receive_json()
        assert message["type"] == "error" or message["payload"].get("errors")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "account_forbidden"


def test_the_live_feed_carries_json_messages_on_the_documented_redis_key() -> None:
    async def run() -> dict[str, Any]:
        redis = Redis.from_url(Settings(env="test").redis_dsn)
        try:
            feed = RedisLiveFeed(redis)
            stream = feed.subscribe("book.TEST-SYM")
            first = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
            for seq in range(1, 100):
                if first.done():
                    break
                raw = json.dumps({"channel": "book.TEST-SYM", "seq": seq, "type": "delta",
                                  "data": {"bids": [["1.00", "2"]]}})  # fmt: skip
                await redis.publish("tradecore:live:book.TEST-SYM", raw)
                await asyncio.sleep(0.02)
            message = await asyncio.wait_for(first, 2)
            await stream.aclose()  # type: ignore[attr-defined]
            return message
        finally:
            await redis.aclose()

    message = asyncio.run(run())
    assert message["channel"] == "book.TEST-SYM"
    assert message["data"] == {"bids": [["1.00", "2"]]}


def test_a_past_account_state_from_a_core_snapshot_equals_the_cores_own_balances(
    migrated_database: str,
) -> None:
    add_users(migrated_database)
    app = build_gateway(
        Settings(env="test", demo_market=False, read_side=False, snapshot_every=5),
        dsn=migrated_database,
        redis_prefix=f"test:{uuid.uuid4().hex}:",
        config=GatewayConfig(rate_limit=1000, rate_window_s=1, login_limit=100),
        hasher=FAST_HASHER,
    )
    with TestClient(app) as client:
        api = Api(client, migrated_database)
        admin = bearer(api.token("admin"))
        client.post("/instruments", json=LISTING, headers=admin)
        for account in ("alice-1", "bob-1"):
            client.post("/accounts", json={"account_id": account}, headers=admin)
            for asset, amount in (("USD", "100000"), ("BTC", "10")):
                body = {"asset": asset, "amount": amount}
                client.post(f"/accounts/{account}/deposits", json=body, headers=admin)
        api.ok(PLACE, "bob", a="bob-1", o=_order("sell", "30000.00", "0.5"))
        api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "30100.00", "0.2"))
        api.ok(PLACE, "alice", a="alice-1", o=_order("buy", "29000.00", "0.1"))
        core = client.get("/accounts/alice-1/balances", headers=bearer(api.token("alice")))
        state = api.ok(
            """query($p: BigInt) { accountState(accountId: "alice-1", position: $p) {
                 fromSnapshot balances { asset available reserved } openOrders { price } } }""",
            "auditor",
            p=str(event_count(migrated_database)),
        )["accountState"]
    assert state["fromSnapshot"] is not None
    assert {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"])) for b in
            state["balances"]} == {b["asset"]: (Decimal(b["available"]), Decimal(b["reserved"]))
                                   for b in core.json()}  # fmt: skip
    assert [Decimal(o["price"]) for o in state["openOrders"]] == [Decimal("29000")]
