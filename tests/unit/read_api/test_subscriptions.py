"""Subscriptions over the `LiveFeed` port (an in-memory fake here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from read_api.viewer import Viewer
from tests.unit.read_api.conftest import Api, codes


async def _start(api: Api, document: str, token: str | None = "alice") -> Any:
    return await api.schema.subscribe(document, context_value=await api.context(token))


async def _next(stream: AsyncGenerator[Any, None]) -> Any:
    return await asyncio.wait_for(anext(stream), timeout=2)


async def test_a_trades_subscriber_receives_what_is_published_on_the_symbols_channel(
    api: Api,
) -> None:
    stream = await _start(api, 'subscription { trades(symbol: "BTC-USD") { channel seq data } }')
    first = asyncio.create_task(_next(stream))
    await asyncio.wait_for(api.live.subscribed.wait(), 2)
    api.live.publish("trades.ETH-USD", 1, "trade", {"price": "1"})
    api.live.publish("trades.BTC-USD", 5, "trade", {"price": "30000.00"})
    result = await first
    assert result.data == {
        "trades": {"channel": "trades.BTC-USD", "seq": "5", "data": {"price": "30000.00"}}
    }
    await stream.aclose()


async def test_my_orders_follows_every_account_the_trader_owns_and_no_other(api: Api) -> None:
    api.gateway.viewers["Bearer carol"] = Viewer(
        "carol", "trader", frozenset({"c-1", "c-2"}), "Bearer carol"
    )
    stream = await _start(api, "subscription { myOrders { channel type } }", token="carol")
    first = asyncio.create_task(_next(stream))
    while len([c for c, q in api.live.queues.items() if q]) < 2:
        await asyncio.sleep(0.01)
    assert sorted(c for c, q in api.live.queues.items() if q) == ["orders.c-1", "orders.c-2"]
    api.live.publish("orders.c-2", 1, "order", {"status": "open"})
    assert (await first).data == {"myOrders": {"channel": "orders.c-2", "type": "order"}}
    await stream.aclose()


async def test_a_trader_cannot_subscribe_to_another_accounts_orders(api: Api) -> None:
    stream = await _start(api, 'subscription { myOrders(accountId: "bob-1") { seq } }')
    result = await _next(stream)
    assert codes(result) == ["account_forbidden"]
    assert not any(api.live.queues.values())


async def test_a_subscription_without_a_token_is_refused(api: Api) -> None:
    stream = await _start(api, 'subscription { book(symbol: "BTC-USD") { seq } }', token=None)
    assert codes(await _next(stream)) == ["not_authenticated"]


async def test_a_subscription_ends_when_its_token_expires(api: Api) -> None:
    ctx = await api.context("alice")
    ctx.viewer = Viewer("alice", "trader", frozenset({"alice-1"}), "Bearer alice", expires_at=2000)
    stream = await api.schema.subscribe(
        'subscription { marketStats(symbol: "BTC-USD") { seq } }', context_value=ctx
    )
    first = asyncio.create_task(_next(stream))
    await asyncio.wait_for(api.live.subscribed.wait(), 2)
    api.live.publish("ticker.BTC-USD", 1, "ticker", {})
    assert (await first).data == {"marketStats": {"seq": "1"}}
    api.now = 2001.0
    second = asyncio.create_task(_next(stream))
    await asyncio.sleep(0)
    api.live.publish("ticker.BTC-USD", 2, "ticker", {})
    assert codes(await second) == ["token_expired"]


async def test_a_candles_subscription_checks_the_interval(api: Api) -> None:
    stream = await _start(
        api, 'subscription { candles(symbol: "BTC-USD", interval: "2m") { seq } }'
    )
    assert codes(await _next(stream)) == ["invalid_value"]
