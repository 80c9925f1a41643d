"""Matching-only throughput: Tradecore's Exchange against PyPI order books on the same orders.

Two seeded flows of limit orders around a mid price (in ticks of 0.01):

* ``crossing``: price = mid ± U[0, 50] ticks, side 50/50 (about half the orders cross);
* ``passive``: buys at mid - U[-5, 50], sells at mid + U[-5, 50] (about one in ten crosses).

Our side runs with everything on: 100 funded traders, reservations, fees, self-trade
prevention, idempotency records and full events. Commands (and the peers' arguments) are
built before the timer; only the order handling is timed. Each engine gets a fresh book
per repeat and the best repeat is reported.

Tradecore runs twice when the Rust kernel is built (``make native``): ``tradecore-rust``
(``domain.kernel.FastExchange``) and ``tradecore-python`` (``domain.exchange.Exchange``, the
reference; compiled with mypyc if built). Both are timed through ``handle``, one command per
call, each ``Outcome`` with its real ``domain.events`` objects; ``--batch N`` times the batch
entry point ``handle_many`` on slices of N commands instead (measured slower here with
N = 2,000: the batch's objects no longer fit the caches). Every engine runs under the same
GC settings: the pre-built inputs and each engine's set-up are frozen (``gc.freeze()``)
before its timer, the collector otherwise stays on with its default thresholds.

A replay figure follows: events/s rebuilding state from canonical JSON payloads, through
``FastExchange.apply_payload`` and through the Python path (``json.loads`` + ``from_dict`` +
``Exchange.apply``, what ``commands.core`` does today).

Run: ``.venv/bin/python bench/matching.py`` (``--help`` for options). Peers are installed
with pip on first use (``--no-install`` to skip); ``matching-engine`` needs Python >= 3.12
and is skipped with a note where it does not install.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import DepositFunds, ListInstrument, OpenAccount, PlaceOrder
from domain.events import OrderCanceled, TradeExecuted, from_dict, to_dict
from domain.exchange import Exchange
from domain.kernel import FastExchange, kernel_available, kernel_status
from domain.values import (
    AccountId,
    Asset,
    CancelReason,
    ClientOrderId,
    OrderId,
    OrderType,
    Side,
    Symbol,
)

MID = 10_000  # ticks of 0.01: 100.00
SYMBOL = Symbol("ABC-USD")
TRADERS = 100


@dataclass(frozen=True, slots=True)
class Spec:
    is_buy: bool
    price_ticks: int
    qty_lots: int
    trader: int


def generate(flow: str, n: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    specs: list[Spec] = []
    for _ in range(n):
        is_buy = rng.random() < 0.5
        if flow == "crossing":
            offset = rng.randint(0, 50)
            price = MID + offset if rng.random() < 0.5 else MID - offset
        else:
            offset = rng.randint(-5, 50)
            price = MID - offset if is_buy else MID + offset
        specs.append(Spec(is_buy, price, rng.randint(1, 10), rng.randrange(TRADERS)))
    return specs


# ---------------------------------------------------------------------------- Tradecore
def _trader(i: int) -> AccountId:
    return AccountId(f"trader-{i:03d}")


AnyExchange = Exchange | FastExchange


def tradecore_exchange(
    factory: Callable[[], AnyExchange] = Exchange, sink: Callable[[Any], object] | None = None
) -> AnyExchange:
    """A funded exchange; ``sink`` receives each set-up outcome and its payloads."""
    ex = factory()

    def decide(cmd: Any) -> None:
        outcome = ex.handle(cmd)
        if sink is not None:
            sink((outcome, [_canonical(e) for e in outcome.events]))

    n = 0

    def meta() -> dict[str, Any]:
        nonlocal n
        n += 1
        return {"command_id": f"setup-{n}", "correlation_id": "setup", "timestamp_ns": n}

    decide(
        ListInstrument(
            **meta(),
            symbol=SYMBOL,
            base=Asset("ABC"),
            quote=Asset("USD"),
            base_decimals=2,
            quote_decimals=2,
            tick_size=Decimal("0.01"),
            lot_size=Decimal("1"),
            min_qty=Decimal("1"),
            max_qty=Decimal("1000000"),
            reference_price=Decimal("100.00"),
            price_band_bps=1000,
            maker_fee_bps=10,
            taker_fee_bps=20,
        )
    )
    for i in range(TRADERS):
        decide(OpenAccount(**meta(), account_id=_trader(i)))
        for asset in ("USD", "ABC"):
            decide(
                DepositFunds(
                    **meta(), account_id=_trader(i), asset=Asset(asset), amount=Decimal(10**9)
                )
            )
    return ex


def tradecore_commands(specs: list[Spec]) -> list[PlaceOrder]:
    traders = [_trader(i) for i in range(TRADERS)]
    return [
        PlaceOrder(
            command_id=f"cmd-{i}",
            correlation_id=f"corr-{i}",
            timestamp_ns=1_700_000_000_000_000_000 + i,
            account_id=traders[s.trader],
            symbol=SYMBOL,
            side=Side.BUY if s.is_buy else Side.SELL,
            order_type=OrderType.LIMIT,
            order_id=OrderId(f"o-{i}"),
            client_order_id=ClientOrderId(f"c-{i}"),
            price=Decimal(s.price_ticks).scaleb(-2),
            quantity=Decimal(s.qty_lots),
        )
        for i, s in enumerate(specs)
    ]


def run_tradecore(
    commands: list[PlaceOrder], factory: Callable[[], AnyExchange] = Exchange, batch: int = 0
) -> tuple[float, dict[str, int]]:
    """Time ``handle`` per command, or with ``batch`` > 0 ``handle_many`` on slices of that
    many commands (sliced inside the timer, as the core takes its queue)."""
    ex = tradecore_exchange(factory)
    trades = lots = stp = events = 0
    stp_reason = CancelReason.SELF_TRADE_PREVENTION
    settle_gc()
    # Outcomes are consumed as they come and dropped, as the core does after each commit
    # (keeping 200,000 of them alive would time the garbage collector, not the engine).
    # The counting loop is written out twice: a helper call per outcome would be timed too.
    if batch <= 0:
        handle = ex.handle
        start = time.perf_counter()
        for command in commands:
            outcome = handle(command)
            events += len(outcome.events)
            for e in outcome.events:
                kind = type(e)
                if kind is TradeExecuted:
                    trades += 1
                    lots += e.qty_lots  # type: ignore[attr-defined]
                elif kind is OrderCanceled and e.reason is stp_reason:  # type: ignore[attr-defined]
                    stp += 1
    else:
        handle_many = ex.handle_many
        start = time.perf_counter()
        for at in range(0, len(commands), batch):
            for outcome in handle_many(commands[at : at + batch]):
                events += len(outcome.events)
                for e in outcome.events:
                    kind = type(e)
                    if kind is TradeExecuted:
                        trades += 1
                        lots += e.qty_lots  # type: ignore[attr-defined]
                    elif kind is OrderCanceled and e.reason is stp_reason:  # type: ignore[attr-defined]
                        stp += 1
    elapsed = time.perf_counter() - start
    stats = {"trades": trades, "lots": lots, "events": events, "stp_cancels": stp}
    if ex.books[SYMBOL].is_crossed():
        raise SystemExit("tradecore: the book ended crossed")
    return elapsed, stats


def settle_gc() -> None:
    """The same for every engine: collect, then freeze what exists (inputs, set-up)."""
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------------- replay
def replay_payloads(n: int, seed: int) -> list[bytes]:
    """Canonical payloads of the first ``n`` events of set-up plus a crossing flow."""
    payloads: list[bytes] = []
    if kernel_available():
        fast = FastExchange()
        handle: Callable[[Any], Any] = fast.handle_encoded  # byte-identical to _canonical
        tradecore_exchange(lambda: fast, sink=lambda got: payloads.extend(got[1]))
    else:
        ex = Exchange()

        def handle(cmd: Any) -> Any:
            outcome = ex.handle(cmd)
            return outcome, [_canonical(e) for e in outcome.events]

        tradecore_exchange(lambda: ex, sink=lambda got: payloads.extend(got[1]))
    for cmd in tradecore_commands(generate("crossing", n // 2 + 1, seed)):
        payloads.extend(handle(cmd)[1])
        if len(payloads) >= n:
            break
    return payloads[:n]


def _canonical(event: Any) -> bytes:
    return json.dumps(to_dict(event), separators=(",", ":"), sort_keys=True).encode()


def run_replay(payloads: list[bytes], repeat: int) -> None:
    print(f"\n== replay: {len(payloads):,} canonical JSON payloads -> state, best of {repeat}")
    engines: list[tuple[str, Callable[[], float]]] = []
    if kernel_available():

        def rust() -> float:
            ex = FastExchange()
            apply = ex.apply_payload
            settle_gc()
            start = time.perf_counter()
            for p in payloads:
                apply(p)
            elapsed = time.perf_counter() - start
            hashes.append(ex.state_hash())
            return elapsed

        engines.append(("tradecore-rust apply_payload", rust))

    def python() -> float:
        ex = Exchange()
        apply, loads, decode = ex.apply, json.loads, from_dict
        settle_gc()
        start = time.perf_counter()
        for p in payloads:
            apply(decode(loads(p)))
        elapsed = time.perf_counter() - start
        hashes.append(ex.state_hash())
        return elapsed

    engines.append(("tradecore-python loads+from_dict+apply", python))
    hashes: list[str] = []
    rates: dict[str, float] = {}
    for name, run in engines:
        best = min(run() for _ in range(repeat))
        gc.unfreeze()
        rates[name] = len(payloads) / best
        print(f"  {name:<40} {rates[name]:>12,.0f} events/s  ({best:.3f} s)")
    if len(set(hashes)) != 1:
        raise SystemExit("replay: the implementations ended in different states")
    print("  same state_hash after replay in every run")


# ---------------------------------------------------------------------------- peers
def run_lightmatchingengine(specs: list[Spec]) -> tuple[float, dict[str, int]]:
    from lightmatchingengine.lightmatchingengine import (  # type: ignore[import-untyped]
        LightMatchingEngine,
    )

    args = [(s.price_ticks, s.qty_lots, 1 if s.is_buy else 2) for s in specs]
    engine = LightMatchingEngine()
    add = engine.add_order
    instrument = "ABC-USD"
    trades = lots = 0
    settle_gc()
    start = time.perf_counter()
    for p, q, side in args:
        order, fills = add(instrument, p, q, side)
        # It reports one aggregate trade for the taker per level plus one per maker hit;
        # the maker fills are the counterpart of our TradeExecuted events.
        for t in fills:
            if t.order_id != order.order_id:
                trades += 1
                lots += t.trade_qty
    elapsed = time.perf_counter() - start
    return elapsed, {"trades": trades, "lots": lots}


PEERS: dict[str, tuple[str, Callable[[list[Spec]], tuple[float, dict[str, int]]] | None]] = {
    # pip name: (import name, runner)
    "lightmatchingengine": ("lightmatchingengine", run_lightmatchingengine),
    "matching-engine": ("matching_engine", None),
}


def ensure_installed(pip_name: str, module: str, install: bool) -> str | None:
    """None when importable (installing it if allowed), else a note saying why not."""
    if importlib.util.find_spec(module) is not None:
        return None
    if not install:
        return "not installed (--no-install)"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", pip_name],
        capture_output=True,
        text=True,
        check=False,
    )
    importlib.invalidate_caches()
    if proc.returncode == 0 and importlib.util.find_spec(module) is not None:
        return None
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    why = lines[0] if lines else f"pip exit status {proc.returncode}"
    return f"did not install on Python {sys.version.split()[0]}: {why}"


# ---------------------------------------------------------------------------- main
def compiled_status() -> str:
    from domain._native import compiled_modules

    native = compiled_modules()
    python = "mypyc-compiled " + ", ".join(native) if native else "pure Python"
    kernel = kernel_status()
    if kernel_available():
        how = "C layout" if FastExchange().decimal_fast_path() else "str()"
        kernel += f" (Decimal arguments read through {how})"
    return f"Rust kernel {kernel}; Python reference {python}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20_240_601)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flow", choices=["crossing", "passive", "both"], default="both")
    parser.add_argument("--no-install", action="store_true", help="do not pip-install peers")
    parser.add_argument("--ours-only", action="store_true", help="skip the peers")
    parser.add_argument(
        "--replay", type=int, default=1_000_000, help="events in the replay figure (0: skip)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="decide with handle_many on slices of this many commands (0: handle per command)",
    )
    opts = parser.parse_args()

    print(f"Python {sys.version.split()[0]}; Tradecore domain: {compiled_status()}")
    api = f"handle_many, batches of {opts.batch:,}" if opts.batch > 0 else "handle per command"
    print(f"Tradecore API timed: {api}")
    peers: list[tuple[str, Callable[[list[Spec]], tuple[float, dict[str, int]]]]] = []
    if not opts.ours_only:
        for pip_name, (module, runner) in PEERS.items():
            note = ensure_installed(pip_name, module, not opts.no_install)
            if note is not None:
                print(f"note: skipping {pip_name}: {note}")
            elif runner is None:
                print(f"note: skipping {pip_name}: installed, but no adapter is written for it")
            else:
                peers.append((pip_name, runner))

    flows = ["crossing", "passive"] if opts.flow == "both" else [opts.flow]
    for flow in flows:
        specs = generate(flow, opts.orders, opts.seed)
        commands = tradecore_commands(specs)
        gc.collect()
        gc.freeze()  # the pre-built inputs are not part of any engine's garbage
        print(f"\n== {flow}: {opts.orders:,} limit orders, seed {opts.seed}, best of {opts.repeat}")
        results: dict[str, tuple[float, dict[str, int]]] = {}
        engines: list[tuple[str, Callable[[], tuple[float, dict[str, int]]]]] = []
        if kernel_available():
            engines.append(
                ("tradecore-rust", partial(run_tradecore, commands, FastExchange, opts.batch))
            )
        engines.append(("tradecore-python", partial(run_tradecore, commands, Exchange, opts.batch)))
        engines += [(name, partial(runner, specs)) for name, runner in peers]
        for name, run in engines:
            best: tuple[float, dict[str, int]] | None = None
            for _ in range(opts.repeat):
                got = run()
                gc.unfreeze()
                if best is None or got[0] < best[0]:
                    best = got
            assert best is not None
            results[name] = best
            rate = opts.orders / best[0]
            extra = ", ".join(f"{k} {v:,}" for k, v in best[1].items())
            print(f"  {name:<22} {rate:>10,.0f} orders/s  ({best[0]:.3f} s; {extra})")
        ours_name = "tradecore-rust" if "tradecore-rust" in results else "tradecore-python"
        if "tradecore-rust" in results:
            if results["tradecore-rust"][1] != results["tradecore-python"][1]:
                raise SystemExit("the Rust kernel and the Python reference disagree")
            print("  tradecore-rust and tradecore-python: identical trades, lots and events")
        peer_rates = {
            n: opts.orders / r[0] for n, r in results.items() if not n.startswith("tradecore")
        }
        ours = opts.orders / results[ours_name][0]
        if peer_rates:
            best_peer = max(peer_rates, key=lambda n: peer_rates[n])
            ratio = ours / peer_rates[best_peer]
            print(f"  ratio {ours_name} / best peer ({best_peer}): {ratio:.2f}x")
            ours_lots = results[ours_name][1]["lots"]
            peer_lots = results[best_peer][1]["lots"]
            print(
                f"  sanity: traded lots tradecore {ours_lots:,} vs {best_peer} {peer_lots:,} "
                f"({ours_lots / max(peer_lots, 1):.3f}; self-trade prevention explains the gap)"
            )

    if opts.replay:
        run_replay(replay_payloads(opts.replay, opts.seed), opts.repeat)


if __name__ == "__main__":
    main()
