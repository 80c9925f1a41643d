"""Property tests: random command streams keep the exchange's invariants and replay exactly."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.commands import Command, PlaceOrder
from domain.events import (
    CommandRejected,
    Event,
    FundsDeposited,
    FundsWithdrawn,
    OrderAccepted,
    TradeExecuted,
    WithdrawalRejected,
    from_dict,
    to_dict,
)
from domain.exchange import Exchange
from domain.values import (
    Asset,
    ClientOrderId,
    OrderId,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)
from tests.unit.domain.factories import (
    amend,
    cancel,
    cancel_all,
    deposit,
    halt,
    limit,
    list_instrument,
    market,
    open_account,
    resume,
    withdraw,
)

# More examples on demand: DOMAIN_PROPERTY_EXAMPLES=5000 pytest tests/unit/domain
MAX_EXAMPLES = int(os.environ.get("DOMAIN_PROPERTY_EXAMPLES", "150"))

ACCOUNTS = ["a", "b", "c"]
SYMBOLS = ["ABC-USD", "XYZ-USD"]
ASSETS = ["ABC", "XYZ", "USD"]


def setup_commands() -> list[Command]:
    cmds: list[Command] = [
        list_instrument(),
        list_instrument(
            symbol=Symbol("XYZ-USD"),
            base=Asset("XYZ"),
            base_decimals=4,
            tick_size=Decimal("0.02"),
            lot_size=Decimal("0.5"),
            min_qty=Decimal("0.5"),
            max_qty=Decimal("50"),
            reference_price=Decimal("10.00"),
            price_band_bps=2000,
            maker_fee_bps=30,
            taker_fee_bps=7,
        ),
    ]
    for acc in ACCOUNTS:
        cmds.append(open_account(acc))
    return cmds


prices_abc = st.one_of(
    st.integers(min_value=9850, max_value=10150).map(lambda t: Decimal(t) / 100),
    st.integers(min_value=8900, max_value=11100).map(lambda t: Decimal(t) / 100),
)
prices_xyz = st.integers(min_value=490, max_value=510).map(lambda t: Decimal(t * 2) / 100)
account = st.sampled_from([*ACCOUNTS, *ACCOUNTS, *ACCOUNTS, "nobody"])
order_ref = st.integers(min_value=0, max_value=40)


@st.composite
def place(draw: st.DrawFn) -> tuple[Any, ...]:
    sym = draw(st.sampled_from(SYMBOLS))
    is_abc = sym == "ABC-USD"
    kind = draw(st.sampled_from(["limit", "limit", "limit", "market"]))
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    lots = draw(st.integers(min_value=1, max_value=6))
    qty = Decimal(lots) if is_abc else Decimal(lots) / 2
    if draw(st.integers(0, 30)) == 0:
        qty = qty + Decimal("0.25")  # off-lot
    price = draw(prices_abc if is_abc else prices_xyz)
    if draw(st.integers(0, 30)) == 0:
        price = price + Decimal("0.001")  # off-tick
    tif = draw(
        st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])
    )
    post_only = draw(st.integers(0, 6)) == 0
    stp = draw(st.sampled_from(list(SelfTradePrevention)))
    budget = None
    if kind == "market" and side is Side.BUY and draw(st.booleans()):
        budget = Decimal(draw(st.integers(min_value=1, max_value=80000))) / 100
    coid = draw(st.one_of(st.none(), st.integers(0, 5)))  # None -> fresh; int -> may repeat
    return ("place", draw(account), sym, kind, side, price, qty, tif, post_only, stp, budget, coid)


op = st.one_of(
    place(),
    place(),
    place(),
    place(),
    place(),
    place(),
    st.tuples(
        st.just("deposit"),
        account,
        st.sampled_from(ASSETS),
        st.integers(1, 500000).map(lambda n: Decimal(n) / 100),
    ),
    st.tuples(
        st.just("withdraw"),
        account,
        st.sampled_from(ASSETS),
        st.integers(1, 500000).map(lambda n: Decimal(n) / 100),
    ),
    st.tuples(st.just("cancel"), account, order_ref),
    st.tuples(
        st.just("amend"),
        account,
        order_ref,
        st.one_of(st.none(), prices_abc),
        st.one_of(st.none(), st.integers(1, 8).map(Decimal)),
    ),
    st.tuples(st.just("cancel_all"), account, st.sampled_from([None, *SYMBOLS])),
)
halt_op = st.tuples(st.sampled_from(["halt", "resume", "resume"]), st.sampled_from(SYMBOLS))
stream = st.lists(
    st.one_of(*([op] * 20), halt_op),
    min_size=15,
    max_size=80,
)


def to_command(spec: tuple[Any, ...], n: int) -> Command:
    kind = spec[0]
    if kind == "place":
        _, acc, sym, otype, side, price, qty, tif, post_only, stp, budget, coid = spec
        client = ClientOrderId(f"fresh-{n}" if coid is None else f"c{coid}")
        oid = OrderId(f"o-{n}")
        if coid is not None and n % 3 == 0:
            oid = OrderId(f"o-c{coid}")  # a retry of the same order: same order id
        common: dict[str, Any] = {
            "symbol": Symbol(sym),
            "order_id": oid,
            "client_order_id": client,
            "time_in_force": tif,
            "stp": stp,
        }
        if otype == "market":
            if budget is not None:
                return market(acc, side, qty=None, budget=str(budget), **common)
            return market(acc, side, qty=str(qty), **common)
        return limit(acc, side, str(price), str(qty), post_only=post_only, **common)
    if kind == "deposit":
        return deposit(spec[1], spec[2], str(spec[3]))
    if kind == "withdraw":
        return withdraw(spec[1], spec[2], str(spec[3]))
    if kind == "cancel":
        return cancel(spec[1], f"o-{spec[2]}")
    if kind == "amend":
        p = None if spec[3] is None else str(spec[3])
        q = None if spec[4] is None else str(spec[4])
        return amend(spec[1], f"o-{spec[2]}", p, q)
    if kind == "cancel_all":
        return cancel_all(spec[1], spec[2])
    if kind == "halt":
        return halt(spec[1])
    return resume(spec[1])


def check_invariants(ex: Exchange, net_flows: dict[str, int]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for acc in ex.accounts.values():
        for asset, bal in acc.balances.items():
            assert bal.available >= 0, (acc.account_id, asset, bal.available)
            assert bal.reserved >= 0, (acc.account_id, asset, bal.reserved)
            totals[asset] += bal.available + bal.reserved
    for asset, amount in ex.fees.items():
        assert amount >= 0
        totals[asset] += amount
    for name in set(totals) | set(net_flows):
        assert totals[name] == net_flows[name], name  # funds conserved
    for book in ex.books.values():
        assert not book.is_crossed()
    needed: dict[tuple[str, str], int] = defaultdict(int)
    for order in ex.orders.values():
        assert order.resting, "between commands every open order rests in the book"
        inst = ex.instruments[order.symbol]
        if order.side is Side.BUY:
            need = order.remaining_lots * inst.buy_unit_cost(order.price_ticks)
        else:
            need = inst.base_atoms(order.remaining_lots)
        assert order.reserved_atoms == need
        needed[(order.account_id, order.reserved_asset)] += need
    for acc in ex.accounts.values():
        for asset, bal in acc.balances.items():
            assert bal.reserved == needed[(acc.account_id, asset)]


def check_outcome(
    ex: Exchange, cmd: Command, events: tuple[Event, ...], resting_prices: dict[OrderId, int]
) -> None:
    accepted = {e.order_id: e for e in events if isinstance(e, OrderAccepted)}
    filled: dict[str, int] = defaultdict(int)
    for e in events:
        if isinstance(e, TradeExecuted):
            taker = accepted[e.taker_order_id]
            if taker.side is Side.BUY:
                assert e.price_ticks <= taker.price_ticks  # within the limit
            else:
                assert e.price_ticks >= taker.price_ticks
            assert e.price_ticks == resting_prices[e.maker_order_id]  # maker's price
            assert e.maker_account_id != e.taker_account_id  # no self-trade
            filled[e.taker_order_id] += e.qty_lots
    for oid, acc_event in accepted.items():
        if acc_event.time_in_force is TimeInForce.FOK and isinstance(cmd, PlaceOrder):
            assert filled[oid] in (0, acc_event.qty_lots)  # all or nothing


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
def test_random_command_streams_keep_every_invariant_and_replay_exactly(
    specs: list[tuple[Any, ...]], funding: list[tuple[str, str]], cut: int
) -> None:
    ex = Exchange()
    log: list[Event] = []
    net: dict[str, int] = defaultdict(int)
    commands = setup_commands()
    commands += [deposit(a, s, "3000.00") for a in ACCOUNTS for s in ASSETS]
    commands += [deposit(a, s, "500.00") for a, s in funding]
    commands += [to_command(spec, n) for n, spec in enumerate(specs)]
    mid_snapshot: dict[str, Any] | None = None
    mid_position = 0
    for i, cmd in enumerate(commands):
        if i == cut:
            mid_snapshot = json.loads(json.dumps(ex.snapshot()))
            mid_position = len(log)
        resting = {oid: o.price_ticks for oid, o in ex.orders.items()}
        before = ex.state_hash()
        outcome = ex.handle(cmd)
        if outcome.duplicate:
            assert ex.state_hash() == before  # a retry changes nothing
            continue
        if outcome.events and all(
            isinstance(e, CommandRejected | WithdrawalRejected) for e in outcome.events
        ):
            assert ex.state_hash() == before  # a rejection changes nothing
        for e in outcome.events:
            if isinstance(e, FundsDeposited):
                net[e.asset] += e.amount_atoms
            elif isinstance(e, FundsWithdrawn):
                net[e.asset] -= e.amount_atoms
        check_outcome(ex, cmd, outcome.events, resting)
        check_invariants(ex, net)
        log.extend(outcome.events)

    # replay from zero, through the JSON form of every event
    replayed = Exchange()
    for e in log:
        replayed.apply(from_dict(json.loads(json.dumps(to_dict(e)))))
    assert replayed.state_hash() == ex.state_hash()

    # snapshot round trip
    restored = Exchange.from_snapshot(json.loads(json.dumps(ex.snapshot())))
    assert restored.state_hash() == ex.state_hash()

    # replay from a snapshot taken part-way
    if mid_snapshot is not None:
        partial = Exchange.from_snapshot(mid_snapshot)
        for e in log[mid_position:]:
            partial.apply(e)
        assert partial.state_hash() == ex.state_hash()
