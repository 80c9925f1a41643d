"""The Rust kernel (``FastExchange``) decides exactly like the Python ``Exchange``.

Random command streams run through both side by side: the same events after every command,
the same ``state_hash()``, snapshots that load into the other implementation, replay of the
Python events' canonical JSON through ``apply_payload``, and ``handle_encoded`` payloads
byte-identical to ``canonical_json``. The batch entry points (``handle_many``,
``handle_encoded_many``) and the kernel's fast readers (command slots, ``Decimal``'s C layout)
are checked the same way, including the inputs that take their fallbacks.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import sys
from dataclasses import replace
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.commands import Command, PlaceOrder
from domain.events import Event, EventDecodeError, to_dict
from domain.exchange import Exchange
from domain.kernel import FastExchange, kernel_available, kernel_status, make_exchange
from domain.values import AccountId, Asset, SelfTradePrevention, Symbol
from tests.unit.domain.factories import (
    ALICE,
    BOB,
    CAROL,
    USD,
    amend,
    buy,
    deposit,
    funded_exchange,
    list_instrument,
    market,
    open_account,
    sell,
    withdraw,
)
from tests.unit.domain.test_properties import ACCOUNTS, ASSETS, setup_commands, stream, to_command

PYTHON_ONLY = "compares both implementations itself"

pytestmark = pytest.mark.skipif(
    not kernel_available(), reason=f"Rust kernel {kernel_status()}; build it with `make native`"
)

MAX_EXAMPLES = int(os.environ.get("DOMAIN_PROPERTY_EXAMPLES", "150"))


def stream_key(event: Event) -> str:
    """``commands.core.stream_key`` (the domain does not import the core)."""
    name = type(event).__name__
    if name == "TradeExecuted":
        return f"trades:{getattr(event, 'symbol')}"  # noqa: B009
    if name == "CommandRejected":
        return f"rejections:{getattr(event, 'subject', '')}"
    owners = (("order_id", "order"), ("account_id", "account"), ("symbol", "instrument"))
    for attr, prefix in owners:
        value = getattr(event, attr, None)
        if value:
            return f"{prefix}:{value}"
    return f"misc:{name}"


def canonical(event: Event) -> bytes:
    return json.dumps(to_dict(event), separators=(",", ":"), sort_keys=True).encode()


def run_both(commands: list[Command]) -> tuple[Exchange, FastExchange, list[Event]]:
    py, fast = Exchange(), FastExchange()
    log: list[Event] = []
    for cmd in commands:
        expected = py.handle(cmd)
        got, payloads = fast.handle_encoded(cmd)
        assert got == expected, cmd
        assert [type(e) for e in got.events] == [type(e) for e in expected.events]
        assert payloads == [canonical(e) for e in expected.events]
        if not expected.duplicate:
            log.extend(expected.events)
    return py, fast, log


def assert_same_views(py: Exchange, fast: FastExchange) -> None:
    """The read-only views the gateway serves are the same in both implementations."""

    def orders(orders: list[Any]) -> list[dict[str, Any]]:
        return [o.to_dict() | {"resting": o.resting} for o in orders]

    assert fast.instruments == py.instruments
    assert {a: acc.balances.keys() for a, acc in fast.accounts.items()} == {
        a: acc.balances.keys() for a, acc in py.accounts.items()
    }
    for account_id, account in py.accounts.items():
        for asset in account.balances:
            assert fast.balance(account_id, asset) == py.balance(account_id, asset)
        assert orders(fast.account_orders(account_id)) == orders(py.account_orders(account_id))
    assert fast.last_price == py.last_price
    assert fast.fees == py.fees
    assert fast.asset_decimals == py.asset_decimals
    assert orders(list(fast.orders.values())) == orders(list(py.orders.values()))


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    specs=stream,
    funding=st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ASSETS)), max_size=4),
    cut=st.integers(min_value=0, max_value=80),
)
def test_random_streams_give_the_same_events_state_and_replay_in_both(
    specs: list[tuple[Any, ...]], funding: list[tuple[str, str]], cut: int
) -> None:
    commands = setup_commands()
    commands += [deposit(a, s, "3000.00") for a in ACCOUNTS for s in ASSETS]
    commands += [deposit(a, s, "500.00") for a, s in funding]
    commands += [to_command(spec, n) for n, spec in enumerate(specs)]
    head, tail = commands[:cut], commands[cut:]
    py, fast, log = run_both(head)
    assert fast.state_hash() == py.state_hash()
    assert fast.snapshot() == py.snapshot()
    # the text the core stores and hashes: the canonical JSON of the same snapshot
    text = fast.snapshot_json()
    assert hashlib.sha256(text.encode()).hexdigest() == py.state_hash()
    assert json.loads(text) == py.snapshot()
    # continue each from the other's snapshot
    py2 = Exchange.from_snapshot(json.loads(json.dumps(fast.snapshot())))
    fast2 = FastExchange.from_snapshot(json.loads(json.dumps(py.snapshot())))
    for cmd in tail:
        expected = py2.handle(cmd)
        assert fast2.handle(cmd) == expected, cmd
        if not expected.duplicate:
            log.extend(expected.events)
    assert fast2.state_hash() == py2.state_hash()
    assert_same_views(py2, fast2)

    # replay from zero: payloads through the kernel, event objects through apply
    replayed = FastExchange()
    for e in log:
        replayed.apply_payload(canonical(e))
    assert replayed.state_hash() == py2.state_hash()
    applied = FastExchange()
    for e in log:
        applied.apply(e)
    assert applied.state_hash() == py2.state_hash()


def test_replay_returns_the_core_stream_key() -> None:
    py = funded_exchange()
    fast = FastExchange.from_snapshot(py.snapshot())
    events = [*py.handle(sell(BOB, "100.00", "2")).events]
    events += py.handle(buy(ALICE, "100.00", "1")).events
    events += py.handle(withdraw(ALICE, USD, "1E+60")).events
    got = [fast.apply_payload(canonical(e)) for e in events]
    assert got == [stream_key(e) for e in events]
    assert "trades:ABC-USD" in got and "account:alice" in got
    assert fast.state_hash() == py.state_hash()


def test_a_bad_payload_is_refused_with_event_decode_error() -> None:
    fast = FastExchange()
    with pytest.raises(EventDecodeError):
        fast.apply_payload(b'{"event_type":"Nope","schema_version":1}')
    with pytest.raises(EventDecodeError):
        fast.apply_payload(b'{"event_type":"AccountOpened","schema_version":2}')
    with pytest.raises(EventDecodeError):
        fast.apply_payload(b'{"account_id":"a","amount":1.5}')


EDGE_COMMANDS = [
    buy(ALICE, "NaN", "1"),
    buy(ALICE, "sNaN", "1"),
    buy(ALICE, "Infinity", "1"),
    buy(ALICE, "-Infinity", "1"),
    buy(ALICE, "1E+60", "1"),
    buy(ALICE, "-1E+60", "1"),
    buy(ALICE, "1E-60", "1"),
    buy(ALICE, "100.00", "1E+60"),
    buy(ALICE, "100.00", "-1E+60"),
    buy(ALICE, "100.00", "0"),
    buy(ALICE, "-0", "1"),
    buy(ALICE, "99.5", "1"),
    buy(ALICE, "1.00E+2", "1.0"),
    deposit(ALICE, USD, "NaN"),
    deposit(ALICE, USD, "-5.00"),
    deposit(ALICE, USD, "0.001"),
    deposit(ALICE, "EUR", "1"),
    withdraw(ALICE, USD, "1E+60"),
    withdraw(ALICE, USD, "Infinity"),
    list_instrument(),
    list_instrument(symbol=Symbol("X-USD"), base=Asset("X"), tick_size=Decimal("0.001")),
    list_instrument(symbol=Symbol("Y-USD"), base=Asset("Y"), lot_size=Decimal("0.001")),
    list_instrument(symbol=Symbol("Z-USD"), base=Asset("Z"), max_qty=Decimal("0.5")),
    list_instrument(symbol=Symbol("W-USD"), base=Asset("USD")),
    list_instrument(symbol=Symbol("V-USD"), base=Asset("V"), quote_decimals=4),
    list_instrument(symbol=Symbol("U-USD"), base=Asset("U"), price_band_bps=0),
    list_instrument(symbol=Symbol("T-USD"), base=Asset("T"), maker_fee_bps=10_001),
    list_instrument(symbol=Symbol("S-USD"), base=Asset("S"), reference_price=Decimal("0.005")),
    list_instrument(symbol=Symbol("R-USD"), base=Asset("R"), tick_size=Decimal("-Infinity")),
    list_instrument(symbol=Symbol("Q-USD"), base=Asset("Q"), base_decimals=19),
    # beyond the kernel's range: refused with a reason by both, never an exception
    list_instrument(
        symbol=Symbol("P-USD"),
        base=Asset("P"),
        tick_size=Decimal("40"),
        lot_size=Decimal("1E+24"),
        min_qty=Decimal("1E+24"),
        max_qty=Decimal("1E+24"),
        reference_price=Decimal("1880"),
        quote_decimals=15,
    ),
    list_instrument(symbol=Symbol("O-USD"), base=Asset("O"), tick_size=Decimal("NaN")),
    list_instrument(symbol=Symbol("N-USD"), base=Asset("N"), lot_size=Decimal("sNaN")),
    list_instrument(symbol=Symbol("M-USD"), base=Asset("M"), tick_size=Decimal("Infinity")),
    list_instrument(
        symbol=Symbol("L-USD"),
        base=Asset("L"),
        tick_size=Decimal("0.123456789012345"),
        lot_size=Decimal("1.234567890123456"),
    ),
    list_instrument(symbol=Symbol("K-USD"), base=Asset("K"), max_qty=Decimal("1E+36")),
    list_instrument(symbol=Symbol("J-USD"), base=Asset("J"), min_qty=Decimal("-1E+40")),
    list_instrument(symbol=Symbol("I-USD"), base=Asset("I"), reference_price=Decimal("1E+40")),
    list_instrument(symbol=Symbol("H-USD"), base=Asset("H"), max_qty=Decimal("1E+27")),
    list_instrument(symbol=Symbol("G-USD"), base=Asset("G"), lot_size=Decimal("1E+34")),
    deposit(ALICE, USD, "1E+60"),
    deposit(ALICE, USD, "1E+34"),
    deposit(ALICE, USD, "9999999999999999999999999999999999.99"),
    open_account('ünïcødé "quoted" \\ \n'),
    deposit('ünïcødé "quoted" \\ \n', USD, "1.00"),
]


@pytest.mark.parametrize("cmd", EDGE_COMMANDS, ids=[str(i) for i in range(len(EDGE_COMMANDS))])
def test_unusual_input_is_decided_the_same(cmd: Command) -> None:
    py = funded_exchange()
    fast = FastExchange.from_snapshot(py.snapshot())
    _, fast_payloads = fast.handle_encoded(cmd)
    expected = py.handle(cmd)
    assert fast_payloads == [canonical(e) for e in expected.events]
    assert fast.state_hash() == py.state_hash()


def test_make_exchange_honours_the_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_exchange(), FastExchange)
    monkeypatch.setenv("TRADECORE_PURE_PYTHON", "1")
    assert type(make_exchange()) is Exchange


def test_a_balance_stops_short_of_the_kernels_range_in_both() -> None:
    py = funded_exchange()
    fast = FastExchange.from_snapshot(py.snapshot())
    big = "400000000000000000000000000000000"  # 4e32 USD = 4e34 atoms
    decided = []
    for i in range(30):
        cmd = deposit(ALICE, USD, big, command_id=f"big-{i}")
        _, fast_payloads = fast.handle_encoded(cmd)
        expected = py.handle(cmd).events
        assert fast_payloads == [canonical(e) for e in expected]
        decided.append(type(expected[0]).__name__)
    assert decided[:24] == ["FundsDeposited"] * 24
    assert set(decided[25:]) == {"CommandRejected"}
    assert fast.state_hash() == py.state_hash()
    assert py.accounts[AccountId(ALICE)].available(Asset(USD)) < 10**36


def test_commands_refuse_more_digits_than_the_kernel_reads() -> None:
    with pytest.raises(ValueError, match="more than 38 significant digits"):
        deposit(ALICE, USD, "1" * 39)
    with pytest.raises(ValueError, match="exponent"):
        deposit(ALICE, USD, "1E+61")
    assert deposit(ALICE, USD, "9" * 38).amount == Decimal("9" * 38)


def _stream_commands(specs: list[tuple[Any, ...]]) -> list[Command]:
    commands = setup_commands()
    commands += [deposit(a, s, "3000.00") for a in ACCOUNTS for s in ASSETS]
    commands += [to_command(spec, n) for n, spec in enumerate(specs)]
    return commands


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(specs=stream, cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
def test_batches_decide_like_one_command_at_a_time(
    specs: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    commands = _stream_commands(specs)
    bounds = sorted({0, len(commands), *(min(c, len(commands)) for c in cuts)})
    batches = [commands[a:b] for a, b in pairwise(bounds)]
    py, py_many, fast, fast_encoded = Exchange(), Exchange(), FastExchange(), FastExchange()
    for batch in batches:
        expected = [py.handle(cmd) for cmd in batch]
        assert py_many.handle_many(batch) == expected
        got = fast.handle_many(tuple(batch))  # any sequence
        assert got == expected
        assert [[type(e) for e in o.events] for o in got] == [
            [type(e) for e in o.events] for o in expected
        ]
        encoded = fast_encoded.handle_encoded_many(iter(batch))  # any iterable
        assert [outcome for outcome, _ in encoded] == expected
        assert [payloads for _, payloads in encoded] == [
            [canonical(e) for e in o.events] for o in expected
        ]
    assert fast.handle_many([]) == []
    hashes = {py.state_hash(), py_many.state_hash(), fast.state_hash(), fast_encoded.state_hash()}
    assert len(hashes) == 1


def test_a_batch_that_raises_keeps_the_commands_before_it_in_both() -> None:
    py, fast = funded_exchange(), FastExchange.from_snapshot(funded_exchange().snapshot())
    batch: list[Any] = [sell(BOB, "100.00", "2"), buy(ALICE, "100.00", "1"), object(), buy()]
    for ex in (py, fast):
        with pytest.raises(TypeError, match="unknown command"):
            ex.handle_many(batch)
    assert fast.state_hash() == py.state_hash()
    assert fast.order(batch[0].order_id) is not None


def test_repeated_orders_give_back_their_recorded_events_in_both() -> None:
    """The kernel keeps idempotency records compactly encoded and decodes them for a repeat:
    amounts beyond 64 bits, non-ASCII ids, trades, rests and cancels, before and after a
    snapshot, and records whose events carry other metadata than their first."""
    rich = "10000000000000000000.00"  # 10^21 quote atoms: budgets and reservations > 2^64
    py = funded_exchange(usd=rich)
    fast = FastExchange.from_snapshot(py.snapshot())
    orders = [
        sell(BOB, "100.00", "2", command_id="cmd-ünï", correlation_id="corr-\u00e9\u4e2d"),
        buy(ALICE, "100.00", "3"),  # trades 2, rests 1
        market(ALICE, qty=None, budget="1000000000000000000"),  # 10^20 atoms budget
        sell(ALICE, "100.00", "1", stp=SelfTradePrevention.CANCEL_BOTH),  # self-trade cancels
    ]
    for cmd in orders:
        assert fast.handle(cmd) == py.handle(cmd)
    retries = [replace(cmd, command_id=f"retry-{i}") for i, cmd in enumerate(orders)]
    for ex_py, ex_fast in ((py, fast), (Exchange.from_snapshot(py.snapshot()), None)):
        ex_fast = ex_fast or FastExchange.from_snapshot(fast.snapshot())
        for cmd in retries:
            expected = ex_py.handle(cmd)
            assert expected.duplicate
            assert ex_fast.handle(cmd) == expected
        assert ex_fast.state_hash() == ex_py.state_hash()

    # replayed events of one command with differing metadata are recorded as they are
    py2 = funded_exchange()
    events = list(py2.handle(buy(ALICE, "99.00", "1")).events)
    events[1] = replace(events[1], correlation_id="other", timestamp_ns=events[1].timestamp_ns + 1)
    for ex in (replay := funded_exchange(), fast2 := FastExchange.from_snapshot(replay.snapshot())):
        for event in events:
            ex.apply(event)
    retry = replace(buy(ALICE, "99.00", "1"), order_id=events[0].order_id)  # type: ignore[attr-defined]
    retry = replace(retry, client_order_id=events[0].client_order_id)  # type: ignore[attr-defined]
    expected = replay.handle(retry)
    assert expected.duplicate and list(expected.events) == events
    assert fast2.handle(retry) == expected
    assert fast2.snapshot() == replay.snapshot()


def test_a_long_flow_decides_the_same_once_the_kernels_tables_are_large() -> None:
    """Past a few thousand orders the kernel's id table, records and open-order slab are
    large blocks with their own mappings (grown in place or moved, freed when the kernel
    goes): the same decisions, records, snapshot and state as the Python reference."""
    rng = random.Random(20240601)
    py = funded_exchange(usd="100000000.00", abc="10000000.00")
    fast = FastExchange.from_snapshot(py.snapshot())
    orders = []
    for i in range(12_000):
        side = buy if rng.random() < 0.5 else sell
        price = f"{rng.randint(9_600, 10_400) / 100:.2f}"
        account = (ALICE, BOB, CAROL)[i % 3]
        cmd = side(account, price, str(rng.randint(1, 5)), order_id=f"order-{i}")
        orders.append(replace(cmd, client_order_id=f"client-{i}"))
    for cmd in orders:
        assert fast.handle(cmd) == py.handle(cmd), cmd
    assert fast.state_hash() == py.state_hash()
    retries = [replace(cmd, command_id=f"retry-{i}") for i, cmd in enumerate(orders[::997])]
    for cmd in retries:
        expected = py.handle(cmd)
        assert expected.duplicate
        assert fast.handle(cmd) == expected
    again = FastExchange.from_snapshot(fast.snapshot())
    assert again.state_hash() == py.state_hash()
    del fast
    gc.collect()
    assert again.handle(orders[5]) == py.handle(orders[5])


def test_events_are_built_untracked_and_freed_with_their_outcome() -> None:
    """Event objects and outcomes hold only immutable values, so the kernel builds them
    without garbage-collector tracking; they compare and hash like the others, and nothing
    but the outcome holds them."""
    py, fast = funded_exchange(), FastExchange.from_snapshot(funded_exchange().snapshot())
    cmd = sell(BOB, "100.00", "2")
    got, expected = fast.handle(cmd), py.handle(cmd)
    assert got == expected and hash(got.events) == hash(expected.events)
    assert not gc.is_tracked(got) and not any(gc.is_tracked(e) for e in got.events)
    # held by the outcome's tuple alone (plus the loop variable and the call's argument)
    assert [sys.getrefcount(e) for e in got.events] == [3, 3]


def test_decimals_are_read_from_their_c_layout_on_cpython() -> None:
    # CPython's _decimal: the kernel's start-up probes agree with str(), so the fast path is on
    assert FastExchange().decimal_fast_path()


class _OddDecimal(Decimal):
    """A Decimal subclass: the kernel must read it through str(), not its C layout."""


class _OddPlaceOrder(PlaceOrder):
    """A command subclass: the kernel must read it through getattr, not slot offsets."""

    __slots__ = ()


finite_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 38 and abs(int(d.as_tuple().exponent)) <= 40
)
any_decimal = st.one_of(
    finite_decimals,
    st.sampled_from([Decimal(t) for t in ("NaN", "-NaN", "sNaN", "Infinity", "-Infinity")]),
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1).map(Decimal),
    st.integers(min_value=1, max_value=5000).map(lambda n: Decimal(n).scaleb(-2)),
    st.builds(lambda c, e: Decimal(c).scaleb(e), st.integers(0, 10**20), st.integers(-25, 25)),
)


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    price=st.one_of(st.none(), any_decimal),
    qty=st.one_of(st.none(), any_decimal),
    new_price=st.one_of(st.none(), any_decimal),
    new_qty=st.one_of(st.none(), any_decimal),
    odd=st.sampled_from(["plain", "decimal_subclass", "command_subclass"]),
)
def test_any_decimal_argument_is_decided_the_same(
    price: Decimal | None,
    qty: Decimal | None,
    new_price: Decimal | None,
    new_qty: Decimal | None,
    odd: str,
) -> None:
    def wrap(d: Decimal | None) -> Decimal | None:
        return _OddDecimal(d) if d is not None and odd == "decimal_subclass" else d

    py = funded_exchange()
    fast = FastExchange.from_snapshot(py.snapshot())
    resting = sell(BOB, "100.00", "2")
    commands: list[Command] = [resting]
    try:
        place = replace(buy(ALICE), price=wrap(price), quantity=wrap(qty))
        change = replace(
            amend(BOB, resting.order_id, price="1.00"),
            new_price=wrap(new_price),
            new_quantity=wrap(new_qty),
        )
    except ValueError:  # beyond what a command accepts (digits, exponent)
        return
    if odd == "command_subclass":
        fields = {n: getattr(place, n) for n in PlaceOrder.__dataclass_fields__}
        place = _OddPlaceOrder(**fields)
    commands += [place, change]
    for cmd in commands:
        expected = py.handle(cmd)
        got, payloads = fast.handle_encoded(cmd)
        assert got == expected, cmd
        assert payloads == [canonical(e) for e in expected.events]
    assert fast.state_hash() == py.state_hash()
