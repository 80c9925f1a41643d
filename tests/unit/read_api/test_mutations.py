"""Mutations are the REST commands: same path and body, the REST refusal's code kept."""

from __future__ import annotations

from read_api.errors import ReadApiError
from tests.unit.read_api.conftest import Api, codes

PLACE = """mutation($o: OrderInput!) {
  placeOrder(accountId: "alice-1", order: $o, idempotencyKey: "k-1") {
    outcome orderId duplicate events { position event } } }"""


async def test_place_order_runs_the_rest_command_with_the_same_body(api: Api) -> None:
    order = {"symbol": "BTC-USD", "side": "buy", "price": "30000.00", "quantity": "0.5"}
    result = await api.run(PLACE, o=order)
    assert result.errors is None
    assert result.data == {
        "placeOrder": {
            "outcome": "accepted",
            "orderId": "o-1",
            "duplicate": False,
            "events": [{"position": "7", "event": {"event_type": "OrderAccepted"}}],
        }
    }
    method, path, body, headers = api.gateway.commands[0]
    assert (method, path) == ("POST", "/accounts/alice-1/orders")
    assert body == {
        **order,
        "order_type": "limit",
        "time_in_force": "gtc",
        "post_only": False,
        "stp": "cancel_taker",
    }
    assert headers == {"Idempotency-Key": "k-1"}


async def test_a_rest_refusal_comes_back_with_its_code_and_status(api: Api) -> None:
    api.gateway.reply = ReadApiError("account_forbidden", "not yours", status=403)
    result = await api.run(PLACE, o={"symbol": "BTC-USD", "side": "buy"})
    assert codes(result) == ["account_forbidden"]
    assert result.errors is not None and result.errors[0].extensions is not None
    assert result.errors[0].extensions["status"] == 403


async def test_a_path_segment_cannot_escape_its_route(api: Api) -> None:
    await api.run('mutation { cancelOrder(accountId: "alice-1", orderId: "../../x") { outcome } }')
    assert api.gateway.commands[0][1] == "/accounts/alice-1/orders/..%2F..%2Fx"


async def test_a_mutation_without_a_token_is_refused_and_nothing_is_sent(api: Api) -> None:
    result = await api.run('mutation { haltTrading(symbol: "BTC-USD") { outcome } }', token=None)
    assert codes(result) == ["not_authenticated"]
    assert api.gateway.commands == []


async def test_a_float_for_a_decimal_field_is_refused_by_the_schema(api: Api) -> None:
    result = await api.run(PLACE, o={"symbol": "BTC-USD", "side": "buy", "price": 0.1})
    assert result.errors is not None
    assert api.gateway.commands == []
