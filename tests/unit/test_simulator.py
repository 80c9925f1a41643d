"""The demo market's order flow: seeded, varied, valid, and in step with the exchange."""

from __future__ import annotations

from collections import Counter

from domain.commands import Command
from domain.events import to_dict
from domain.exchange import Exchange
from tradecore.simulator import MarketSimulator


def run(sim: MarketSimulator, steps: int) -> tuple[Exchange, list[Command], Counter[str]]:
    exchange = Exchange()
    for command in sim.setup_commands():
        sim.observe(exchange.handle(command).events)
    commands: list[Command] = []
    kinds: Counter[str] = Counter()
    for _ in range(steps):
        command = sim.next_command()
        commands.append(command)
        outcome = exchange.handle(command)
        sim.observe(outcome.events)
        for event in outcome.events:
            data = to_dict(event)
            kinds[data["event_type"]] += 1
            if "reason" in data:
                kinds[f"{data['event_type']}:{data['reason']}"] += 1
    return exchange, commands, kinds


def test_the_same_seed_gives_the_same_commands_and_the_same_state() -> None:
    ex1, first, _ = run(MarketSimulator(seed=11), 3_000)
    ex2, second, _ = run(MarketSimulator(seed=11), 3_000)
    assert first == second
    assert ex1.state_hash() == ex2.state_hash()
    _, other, _ = run(MarketSimulator(seed=12), 3_000)
    assert other != first


def test_the_flow_quotes_trades_cancels_and_amends_on_every_symbol() -> None:
    sim = MarketSimulator(seed=3, symbols=("BTC-USD", "ETH-USD", "SOL-USD"))
    exchange, commands, kinds = run(sim, 20_000)
    kinds_of_commands = Counter(type(c).__name__ for c in commands)
    assert {"PlaceOrder", "CancelOrder", "AmendOrder"} <= kinds_of_commands.keys()
    assert kinds["TradeExecuted"] > 2_000
    assert kinds["OrderAmended"] > 500
    assert kinds["OrderCanceled:requested"] > 1_000
    assert {"BTC-USD", "ETH-USD", "SOL-USD"} <= exchange.last_price.keys()
    # Mostly valid flow: rejections (post-only that would take, ...) stay rare.
    rejected = kinds["OrderRejected"] + kinds["CommandRejected"]
    assert rejected < 0.05 * len(commands)


def test_the_simulator_knows_exactly_which_of_its_orders_rest() -> None:
    sim = MarketSimulator(seed=5)
    exchange, _, _ = run(sim, 5_000)
    resting = {o.order_id for o in exchange.orders.values() if o.resting}
    believed = {live.order_id for m in sim.markets.values() for live in m.live}
    assert believed == resting
    lots = {o.order_id: o.remaining_lots for o in exchange.orders.values() if o.resting}
    assert {live.order_id: live.lots for m in sim.markets.values() for live in m.live} == lots


def test_quotes_stay_bounded_per_symbol() -> None:
    sim = MarketSimulator(seed=9, max_live_per_symbol=50)
    exchange, _, _ = run(sim, 10_000)
    for symbol in sim.symbols:
        assert sum(1 for o in exchange.orders.values() if o.symbol == symbol) <= 60


def test_a_second_run_skips_what_exists_and_adopts_resting_orders() -> None:
    first = MarketSimulator(seed=1, run_id="a")
    exchange, _, _ = run(first, 2_000)
    second = MarketSimulator(seed=1, run_id="b")
    setup = second.setup_commands(
        known_symbols=exchange.instruments, known_accounts=exchange.accounts
    )
    assert setup == []
    second.adopt(
        (o.order_id, o.account_id, o.symbol, o.side, o.price_ticks, o.remaining_lots)
        for o in exchange.orders.values()
        if o.resting
    )
    assert sum(len(m.live) for m in second.markets.values()) == sum(
        1 for o in exchange.orders.values() if o.resting
    )
    for _ in range(2_000):  # new ids never collide with the first run's
        outcome = exchange.handle(second.next_command())
        second.observe(outcome.events)
        assert all(to_dict(e).get("reason") != "duplicate_order_id" for e in outcome.events)
