"""Replay through apply(), snapshots and the state hash."""

from __future__ import annotations

import json
from typing import Any

from domain.commands import Command
from domain.events import Event, from_dict, to_dict
from domain.exchange import Exchange
from domain.values import SelfTradePrevention, Side, TimeInForce
from tests.unit.domain.factories import (
    ALICE,
    BOB,
    CAROL,
    amend,
    buy,
    cancel,
    deposit,
    halt,
    list_instrument,
    market,
    open_account,
    resume,
    sell,
    withdraw,
)


def scenario() -> list[Command]:
    resting = buy(ALICE, "99.00", "4")
    return [
        list_instrument(),
        *[open_account(a) for a in (ALICE, BOB, CAROL)],
        *[deposit(a, s, "5000.00") for a in (ALICE, BOB, CAROL) for s in ("USD", "ABC")],
        resting,
        sell(BOB, "101.00", "3"),
        sell(CAROL, "100.50", "2"),
        buy(CAROL, "101.00", "4", time_in_force=TimeInForce.IOC),
        sell(ALICE, "99.00", "1", stp=SelfTradePrevention.CANCEL_MAKER),
        amend(ALICE, resting.order_id, qty="2"),
        market(BOB, Side.SELL, qty="1"),
        market(CAROL, Side.BUY, qty=None, budget="150.00"),
        halt(),
        cancel(ALICE, resting.order_id),
        resume(),
        withdraw(BOB, "USD", "10.00"),
        buy(ALICE, "100.005", "1"),
    ]


def run(commands: list[Command]) -> tuple[Exchange, list[Event]]:
    ex = Exchange()
    log: list[Event] = []
    for command in commands:
        log.extend(ex.handle(command).events)
    return ex, log


def test_replaying_the_events_rebuilds_an_identical_state() -> None:
    ex, log = run(scenario())
    replayed = Exchange()
    for event in log:
        replayed.apply(event)
    assert replayed.state_hash() == ex.state_hash()
    assert replayed.snapshot() == ex.snapshot()


def test_replaying_events_read_back_from_json_rebuilds_an_identical_state() -> None:
    ex, log = run(scenario())
    replayed = Exchange()
    for event in log:
        replayed.apply(from_dict(json.loads(json.dumps(to_dict(event)))))
    assert replayed.state_hash() == ex.state_hash()


def test_the_same_commands_give_the_same_events_and_state() -> None:
    commands = scenario()
    first, first_log = run(commands)
    second, second_log = run(commands)
    assert first_log == second_log
    assert first.state_hash() == second.state_hash()


def test_snapshot_is_json_safe_and_round_trips_to_an_identical_state() -> None:
    ex, _ = run(scenario())
    data = json.loads(json.dumps(ex.snapshot()))
    assert not _contains_float(data)
    restored = Exchange.from_snapshot(data)
    assert restored.state_hash() == ex.state_hash()


def test_restored_exchange_decides_exactly_like_the_original() -> None:
    ex, _ = run(scenario())
    restored = Exchange.from_snapshot(json.loads(json.dumps(ex.snapshot())))
    more = [sell(BOB, "99.00", "5"), buy(CAROL, "101.00", "3"), buy(ALICE, "100.50", "2")]
    for command in more:
        assert ex.handle(command) == restored.handle(command)
    assert ex.state_hash() == restored.state_hash()


def test_idempotency_records_survive_replay_and_snapshots() -> None:
    commands = scenario()
    ex, log = run(commands)
    replayed = Exchange()
    for event in log:
        replayed.apply(event)
    restored = Exchange.from_snapshot(ex.snapshot())
    original = commands[10]  # the resting buy
    expected = ex.handle(original)
    assert expected.duplicate
    assert replayed.handle(original) == expected
    assert restored.handle(original) == expected


def test_state_hash_changes_when_the_state_changes() -> None:
    ex, _ = run(scenario())
    before = ex.state_hash()
    ex.handle(deposit(ALICE, "USD", "0.01"))
    assert ex.state_hash() != before


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_float(v) for v in value)
    return False
