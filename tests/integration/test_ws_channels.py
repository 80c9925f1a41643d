"""/ws on the real core, PostgreSQL and Redis, followed by the `websockets` client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from alembic import command
from redis.asyncio import Redis

from infra import publisher_process
from infra.migrations import alembic_config
from infra.publisher_process import ProcessPublisher
from infra.settings import Settings
from projections.runner import SERVING_GC_THRESHOLD
from tests.integration.ws_support import Follower, LiveGateway, follow, serve_gateway
from tradecore.bootstrap import build_market_data, reuse_port_socket

pytestmark = pytest.mark.integration


def order(side: str, price: str, qty: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTC-USD", "side": side, "price": price, "quantity": qty, **extra}


@pytest.fixture
def ws_database(database: str) -> str:
    """Migrated to every head (branches being merged elsewhere must not stop these tests)."""
    command.upgrade(alembic_config(database), "heads")
    return database


@pytest.fixture
async def gw(ws_database: str) -> AsyncIterator[LiveGateway]:
    async with serve_gateway(ws_database) as gateway:
        yield gateway


@pytest.fixture(params=["process", "inline"])
async def gw_both(ws_database: str, request: pytest.FixtureRequest) -> AsyncIterator[LiveGateway]:
    """The gateway with its live publisher in a process of its own, and in the gateway."""
    async with serve_gateway(ws_database, live_publisher=request.param) as gateway:
        yield gateway


async def place(client: Follower, account: str, body: dict[str, Any]) -> dict[str, Any]:
    ref = await client.send("place_order", account_id=account, order=body)
    result = await client.result(ref)
    assert result["type"] == "result", result
    return result["body"]


async def test_a_websocket_client_rebuilds_the_cores_book_from_a_snapshot_and_deltas(
    gw_both: LiveGateway,
) -> None:
    gw = gw_both
    for price in ("29990.00", "29980.00", "29980.00"):
        await gw.rest("POST", "/accounts/alice-1/orders", "alice", order("buy", price, "1"))
    await gw.rest("POST", "/accounts/bob-1/orders", "bob", order("sell", "30010.00", "2"))
    async with follow(gw, "alice") as alice, follow(gw, "bob") as bob:
        await alice.send("subscribe", channel="book.BTC-USD")
        await alice.wait_for(lambda: "book.BTC-USD" in alice.books)
        assert alice.books["book.BTC-USD"] == gw.book()
        resting = await place(alice, "alice-1", order("buy", "29995.00", "0.5"))
        await place(bob, "bob-1", order("sell", "29980.00", "1.7", time_in_force="ioc"))
        await place(alice, "alice-1", order("buy", "30010.00", "0.25"))
        ref = await alice.send("cancel_order", account_id="alice-1", order_id=resting["order_id"])
        await alice.result(ref)
        amend = {"new_price": "29970.00"}
        open_orders = await gw.http.get(
            "/accounts/alice-1/orders", headers={"Authorization": f"Bearer {gw.tokens['alice']}"}
        )
        target = open_orders.json()[0]["order_id"]
        ref = await alice.send("amend_order", account_id="alice-1", order_id=target, amend=amend)
        await alice.result(ref)
        await alice.wait_for(lambda: alice.books["book.BTC-USD"] == gw.book())
        deltas = [m for m in alice.messages if m.get("type") == "delta"]
        assert deltas and alice.gaps == 0
        assert gw.book()["asks"] == {3001000: 175}


async def test_an_order_placed_over_the_socket_gets_the_same_outcome_as_over_rest(
    gw: LiveGateway,
) -> None:
    async with follow(gw, "alice") as alice:
        body = await place(alice, "alice-1", order("buy", "29000.00", "1", client_order_id="c-1"))
        assert body["outcome"] == "accepted" and body["order_id"].startswith("o-")
        assert [e["event"]["event_type"] for e in body["events"]] == [
            "OrderAccepted",
            "OrderRested",
        ]
        again = await gw.rest(
            "POST", "/accounts/alice-1/orders", "alice", order("buy", "29000.00", "1",
                                                               client_order_id="c-1")
        )  # fmt: skip
        assert again["duplicate"] is True and again["order_id"] == body["order_id"]


async def test_a_trader_is_refused_another_accounts_private_channel_with_a_reason(
    gw: LiveGateway,
) -> None:
    async with follow(gw, "alice") as alice, follow(gw) as anonymous:
        refused = await alice.result(await alice.send("subscribe", channel="orders.bob-1"))
        assert refused["type"] == "error" and refused["code"] == "account_forbidden"
        nobody = await anonymous.result(await anonymous.send("subscribe", channel="orders.alice-1"))
        assert nobody["code"] == "not_authenticated"
        await alice.send("subscribe", channel="orders")
        await alice.wait_for(lambda: "orders.alice-1" in alice.last_seq)
        await gw.rest("POST", "/accounts/bob-1/orders", "bob", order("buy", "29000.00", "1"))
        body = await place(alice, "alice-1", order("buy", "29001.00", "1"))
        await alice.wait_for(
            lambda: any(
                m.get("type") == "OrderRested" and m["data"]["order_id"] == body["order_id"]
                for m in alice.messages
            )
        )
        private = [m for m in alice.messages if "seq" in m and m["channel"].startswith("orders.")]
        seen = {m["data"]["account_id"] for m in private if m["type"] != "snapshot"}
        assert seen == {"alice-1"}
        ref = await alice.send(
            "place_order", account_id="bob-1", order=order("buy", "29000.00", "1")
        )
        assert (await alice.result(ref))["code"] == "account_forbidden"


async def test_malformed_and_oversize_messages_are_refused_with_a_reason_and_write_nothing(
    gw: LiveGateway,
) -> None:
    async with follow(gw, "alice") as alice:
        before = gw.event_count()
        good = order("buy", "29000.00", "1")
        place_ = {"op": "place_order", "account_id": "alice-1"}
        await alice.ws.send("{nope")
        await alice.ws.send(json.dumps({**place_, "order": good})[:-1] + ',"x":1.5}')
        await alice.ws.send(json.dumps({**place_, "id": 7, "order": {**good, "price": 29000.5}}))
        await alice.ws.send(json.dumps({**place_, "id": 8, "order": {**good, "colour": "red"}}))
        huge = {"symbol": "BTC-USD" + "X" * 20_000}
        await alice.ws.send(json.dumps({**place_, "id": 9, "order": huge}))
        await alice.ws.send(json.dumps({"op": "launch_missiles", "id": 10}))
        await alice.ws.send(json.dumps({"op": "subscribe", "id": 11, "channel": "book.NOPE-USD"}))
        await alice.ws.send(json.dumps({"op": "subscribe", "id": 12, "channel": "books.BTC-USD"}))
        await alice.wait_for(lambda: len(alice.of_type("error")) >= 8)
        codes = [m["code"] for m in alice.of_type("error")]
        assert codes == [
            "malformed_json",
            "float_not_allowed",
            "float_not_allowed",
            "unknown_field",
            "message_too_large",
            "unknown_op",
            "unknown_symbol",
            "invalid_channel",
        ]
        assert alice.results[8]["details"]["field"] == "order.colour"
        assert gw.event_count() == before
        pong = await alice.result(await alice.send("ping"))
        assert pong == {**pong, "type": "pong"}


async def test_a_gap_in_the_sequence_makes_the_client_resnapshot_and_recover_the_book(
    gw: LiveGateway,
) -> None:
    async with follow(gw, "alice") as alice:
        await place(alice, "alice-1", order("buy", "29990.00", "1"))
        await alice.send("subscribe", channel="book.BTC-USD")
        await alice.wait_for(lambda: "book.BTC-USD" in alice.books)
        seq = alice.last_seq["book.BTC-USD"]
        lost = {"channel": "book.BTC-USD", "seq": seq + 3, "type": "delta",
                "data": {"bids": [[2999000, 0, 0]], "asks": []}}  # fmt: skip
        redis = Redis.from_url(Settings(env="test").redis_dsn)
        try:
            await redis.publish(f"{gw.prefix}live:book.BTC-USD", json.dumps(lost))
        finally:
            await redis.aclose()
        await alice.wait_for(lambda: alice.gaps == 1 and not alice.waiting_snapshot)
        await place(alice, "alice-1", order("buy", "29991.00", "1"))
        await alice.wait_for(lambda: alice.books["book.BTC-USD"] == gw.book())
        assert len([m for m in alice.of_type("snapshot") if m["channel"] == "book.BTC-USD"]) == 2


async def test_a_silent_client_is_closed_after_the_heartbeat_timeout_and_heartbeats_flow(
    ws_database: str,
) -> None:
    gateway = serve_gateway(ws_database, heartbeat_s=0.1, idle_timeout_s=0.5)
    async with gateway as gw, follow(gw) as quiet:
        await quiet.wait_for(lambda: quiet.close_code is not None, timeout=5)
        assert quiet.close_code == 4009
        assert quiet.close_reason.startswith("heartbeat_timeout")
        assert quiet.of_type("heartbeat")


async def test_a_private_channel_asked_for_in_the_same_breath_as_the_connect_is_granted(
    gw: LiveGateway,
) -> None:
    # The browser subscribes as soon as the socket opens; the ?token= check must come first
    # (it once raced the reader: "authenticate first", and the alerts notices never came).
    import asyncio

    import websockets

    for _ in range(5):
        async with websockets.connect(f"{gw.ws_url}?token={gw.tokens['alice']}") as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "orders.alice-1", "id": "s"}))
            answers: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not any(a.get("id") == "s" for a in answers):
                    answers.append(json.loads(await ws.recv()))
            answer = next(a for a in answers if a.get("id") == "s")
            assert answer["type"] == "subscribed", answer


async def test_a_storm_of_subscribers_during_trading_shares_snapshot_reads_and_sees_no_gap(
    gw: LiveGateway,
) -> None:
    """40 clients subscribe at once to the book while orders change it: every one gets its
    snapshot (reads are coalesced: fewer Redis round trips than subscribers) and then every
    delta after it with no gap, ending on the core's book."""
    feed = gw.app.state.live.feed
    batches = 0
    read = feed._read_snapshots._run

    async def counted(channels: Any) -> Any:
        nonlocal batches
        batches += 1
        return await read(channels)

    feed._read_snapshots._run = counted
    async with contextlib.AsyncExitStack() as stack:
        trader = await stack.enter_async_context(follow(gw, "alice"))
        clients = [await stack.enter_async_context(follow(gw)) for _ in range(40)]
        prices = [f"2998{i % 10}.00" for i in range(30)]
        placing = asyncio.gather(*(place(trader, "alice-1", order("buy", p, "1")) for p in prices))
        for client in clients:
            await client.send("subscribe", channel="book.BTC-USD")
        await placing
        for client in clients:
            await client.wait_for(lambda c=client: c.books.get("book.BTC-USD") == gw.book())
    assert all(c.gaps == 0 for c in clients)
    assert 1 <= batches < 40


async def test_a_market_data_process_serves_the_gateways_trades_and_refuses_commands(
    gw: LiveGateway,
) -> None:
    """`tradecore market-data`: another process (here another server on its own port) fed
    by Redis carries subscribers, private channels included; commands there are refused."""
    app = build_market_data(Settings(env="test"), dsn=gw.dsn, redis_prefix=gw.prefix)
    sock = reuse_port_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.02)
        md = dataclasses.replace(gw, base=f"http://127.0.0.1:{sock.getsockname()[1]}")
        async with follow(md, "alice") as watcher, follow(gw, "bob") as bob:
            await watcher.send("subscribe", channels=["trades.BTC-USD", "orders"])
            await watcher.wait_for(lambda: len(watcher.of_type("snapshot")) == 2)
            await place(bob, "bob-1", order("sell", "30000.00", "1"))
            await gw.rest(
                "POST", "/accounts/alice-1/orders", "alice", order("buy", "30000.00", "1")
            )
            await watcher.wait_for(lambda: bool(watcher.of_type("trade")))
            await watcher.wait_for(
                lambda: any(
                    m.get("channel") == "orders.alice-1" for m in watcher.of_type("TradeExecuted")
                )
            )
            assert watcher.gaps == 0
            before = gw.event_count()
            ref = await watcher.send(
                "place_order", account_id="alice-1", order=order("buy", "1.00", "1")
            )
            refused = await watcher.result(ref)
            assert refused["type"] == "error" and refused["code"] == "commands_not_served"
            assert "trading gateway" in refused["message"]
            assert gw.event_count() == before
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)


async def test_the_publisher_process_is_replaced_when_it_dies_or_falls_behind(
    gw: LiveGateway,
) -> None:
    """Killed, or too far behind: a new publisher process is seeded from the core at rest,
    subscribers see a gap, take a fresh snapshot and end on the core's book."""
    publisher = gw.app.state.publisher
    assert isinstance(publisher, ProcessPublisher)
    async with follow(gw, "alice") as alice:
        await alice.send("subscribe", channel="book.BTC-USD")
        await alice.wait_for(lambda: "book.BTC-USD" in alice.books)
        for restart, price in ((1, "29000.00"), (2, "29100.00")):
            old = publisher._proc
            assert old is not None
            if restart == 1:
                os.kill(old.pid, signal.SIGKILL)
            else:
                publisher.max_buffer = -1  # the next batch finds the pipe "too far behind"
            await place(alice, "alice-1", order("buy", price, "1"))
            await alice.wait_for(lambda r=restart: publisher.restarts == r, timeout=30)
            publisher.max_buffer = 256 * 1024 * 1024
            await alice.wait_for(lambda: publisher.health().state == "up", timeout=30)
            assert publisher._proc is not old
            await place(alice, "alice-1", order("buy", "28000.00", "1"))
            await alice.wait_for(lambda: alice.books["book.BTC-USD"] == gw.book(), timeout=20)
        assert alice.gaps >= 1  # the new publisher skipped a seq: the client resnapshotted


async def test_the_gateway_serves_with_fewer_collections_and_gives_the_thresholds_back(
    ws_database: str,
) -> None:
    """The cyclic collector's pauses were the largest in the serving benchmarks' profiles
    (projections.runner.SERVING_GC_THRESHOLD); they are the gateway's setting while it serves,
    not the test process's after it stops."""
    before = gc.get_threshold()
    assert before[0] < SERVING_GC_THRESHOLD
    async with serve_gateway(ws_database):
        assert gc.get_threshold() == (SERVING_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


async def test_a_publisher_process_lost_while_starting_is_replaced_once_and_stays(
    gw: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement killed before it is ready, then one whose waiting batches outgrow the
    bound: each is replaced once, and a start that outlived its child does not later take
    down its successor (its wait for `ready` times out after the successor is up)."""
    monkeypatch.setattr(publisher_process, "READY_TIMEOUT_S", 6.0)
    publisher = gw.app.state.publisher
    assert isinstance(publisher, ProcessPublisher)
    async with follow(gw, "alice") as alice:
        await alice.send("subscribe", channel="book.BTC-USD")
        await alice.wait_for(lambda: "book.BTC-USD" in alice.books)
        first = publisher._proc
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        await alice.wait_for(lambda: publisher._proc not in (None, first), timeout=10)
        starting = publisher._proc
        assert starting is not None and not publisher._accepting
        os.kill(starting.pid, signal.SIGKILL)  # before it said `ready`
        await alice.wait_for(lambda: publisher._proc not in (None, starting), timeout=10)
        assert not publisher._accepting  # the third is starting: a batch waits for it
        publisher.max_buffer = -1
        await place(alice, "alice-1", order("buy", "29000.00", "1"))
        await alice.wait_for(lambda: publisher.restarts == 3, timeout=3)  # not a timeout's
        publisher.max_buffer = 256 * 1024 * 1024
        await alice.wait_for(lambda: publisher.health().state == "up", timeout=30)
        last = publisher._proc
        await asyncio.sleep(publisher_process.READY_TIMEOUT_S + 1)  # every earlier start's wait
        assert publisher.restarts == 3 and publisher._proc is last
        assert last is not None and last.returncode is None
        await place(alice, "alice-1", order("buy", "28000.00", "1"))
        await alice.wait_for(lambda: alice.books["book.BTC-USD"] == gw.book(), timeout=20)
