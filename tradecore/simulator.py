"""The demo market: seeded, realistic order flow for several symbols, and a driver for the core.

``MarketSimulator`` is pure and deterministic for a given seed: it lists instruments, opens
and funds accounts, then produces an endless stream of commands. Market makers quote around
a random-walk mid, takers cross the spread with IOC, FOK and market orders, and resting
quotes are canceled and amended. It learns which orders rest, fill and leave from the events
fed back to ``observe``. The same flow drives the demo (``tradecore simulate``, ``make
run``) and the benchmarks; ``drive`` submits it to anything with the core's ``submit``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from domain.commands import (
    AmendOrder,
    CancelOrder,
    Command,
    DepositFunds,
    ListInstrument,
    OpenAccount,
    PlaceOrder,
)
from domain.events import (
    Event,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    OrderRested,
    TradeExecuted,
)
from domain.values import (
    AccountId,
    Asset,
    ClientOrderId,
    OrderId,
    OrderType,
    Reason,
    Side,
    Symbol,
    TimeInForce,
)

USD = Asset("USD")
USD_DECIMALS = 6
SIM_EPOCH_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: the simulated clock's start
SIM_STEP_NS = 1_000_000  # one simulated millisecond per command


@dataclass(frozen=True)
class SymbolSpec:
    """A listing for the demo market (USD-quoted; USD has 6 decimals everywhere)."""

    symbol: str
    base: str
    reference_price: Decimal
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    base_deposit: Decimal
    base_decimals: int = 8
    price_band_bps: int = 1_000
    maker_fee_bps: int = 10
    taker_fee_bps: int = 20

    def listing(self, meta: dict[str, Any]) -> ListInstrument:
        return ListInstrument(
            **meta,
            symbol=Symbol(self.symbol),
            base=Asset(self.base),
            quote=USD,
            base_decimals=self.base_decimals,
            quote_decimals=USD_DECIMALS,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            min_qty=self.min_qty,
            max_qty=self.max_qty,
            reference_price=self.reference_price,
            price_band_bps=self.price_band_bps,
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
        )


CATALOGUE: dict[str, SymbolSpec] = {
    spec.symbol: spec
    for spec in (
        SymbolSpec(
            "BTC-USD",
            "BTC",
            Decimal("30000.00"),
            Decimal("0.01"),
            Decimal("0.0001"),
            Decimal("0.0001"),
            Decimal("50"),
            base_deposit=Decimal("500"),
        ),
        SymbolSpec(
            "ETH-USD",
            "ETH",
            Decimal("2000.00"),
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("0.001"),
            Decimal("500"),
            base_deposit=Decimal("10000"),
        ),
        SymbolSpec(
            "SOL-USD",
            "SOL",
            Decimal("150.000"),
            Decimal("0.001"),
            Decimal("0.01"),
            Decimal("0.01"),
            Decimal("20000"),
            base_deposit=Decimal("200000"),
        ),
        SymbolSpec(
            "ABC-USD",
            "ABC",
            Decimal("100.00"),
            Decimal("0.01"),
            Decimal("1"),
            Decimal("1"),
            Decimal("100000"),
            base_deposit=Decimal("1000000"),
        ),
    )
}
USD_DEPOSIT = Decimal("50000000")


def spec_for(symbol: str) -> SymbolSpec:
    """The catalogue's listing, or a generic one priced at 100 for any other symbol."""
    if symbol in CATALOGUE:
        return CATALOGUE[symbol]
    base = symbol.split("-")[0]
    generic = CATALOGUE["ABC-USD"]
    return SymbolSpec(
        symbol,
        base,
        generic.reference_price,
        generic.tick_size,
        generic.lot_size,
        generic.min_qty,
        generic.max_qty,
        base_deposit=generic.base_deposit,
    )


@dataclass
class _Live:
    """A resting order as the simulator believes it to be."""

    order_id: str
    account_id: str
    symbol: str
    side: Side
    price_ticks: int
    lots: int


@dataclass
class _Market:
    spec: SymbolSpec
    mid_ticks: int
    reference_ticks: int
    live: list[_Live] = field(default_factory=list)  # a list for seeded random choice

    @property
    def unit(self) -> int:
        """The typical quote distance in ticks: about 0.2 basis points of the price."""
        return max(1, round(self.reference_ticks * 0.00002))


class MarketSimulator:
    """Deterministic order flow: same seed, same commands (given the same observed events)."""

    def __init__(
        self,
        seed: int = 7,
        symbols: Sequence[str] = ("BTC-USD", "ETH-USD", "SOL-USD"),
        traders: int = 20,
        *,
        run_id: str | None = None,
        clock: Callable[[], int] | None = None,
        max_live_per_symbol: int = 400,
    ) -> None:
        if traders < 2:
            raise ValueError("the simulator needs at least 2 traders")
        self.rng = random.Random(seed)
        self.run_id = run_id if run_id is not None else f"s{seed}"
        self.markets: dict[str, _Market] = {}
        for name in symbols:
            spec = spec_for(name)
            ticks = int(spec.reference_price / spec.tick_size)
            self.markets[name] = _Market(spec, ticks, ticks)
        self.symbols = list(self.markets)
        makers = max(1, traders * 2 // 5)
        self.makers = [f"mm-{i:02d}" for i in range(1, makers + 1)]
        self.takers = [f"taker-{i:02d}" for i in range(1, traders - makers + 1)]
        self.max_live = max_live_per_symbol
        self._seq = 0
        self._ticks = 0
        self._clock = clock
        self._live_by_id: dict[str, _Live] = {}
        self._topups: list[tuple[str, Asset]] = []

    @property
    def accounts(self) -> list[str]:
        return self.makers + self.takers

    # -- ids and time ------------------------------------------------------------------------

    def _next_id(self, kind: str) -> str:
        self._seq += 1
        return f"{self.run_id}-{kind}{self._seq}"

    def _now(self) -> int:
        self._ticks += 1
        if self._clock is not None:
            return self._clock()
        return SIM_EPOCH_NS + self._ticks * SIM_STEP_NS

    def _meta(self) -> dict[str, Any]:
        """A new command's id, correlation id (the same) and time."""
        cid = self._next_id("c")
        return {"command_id": cid, "correlation_id": cid, "timestamp_ns": self._now()}

    # -- set-up ------------------------------------------------------------------------------

    def setup_commands(
        self, *, known_symbols: Iterable[str] = (), known_accounts: Iterable[str] = ()
    ) -> list[Command]:
        """List the instruments, open and fund the accounts (skipping what already exists)."""
        listed, opened = set(known_symbols), set(known_accounts)
        commands: list[Command] = []
        for market in self.markets.values():
            if market.spec.symbol not in listed:
                meta = self._meta()
                commands.append(market.spec.listing(meta))
        for account in self.accounts:
            if account in opened:
                continue
            meta = self._meta()
            commands.append(
                OpenAccount(
                    **meta,
                    account_id=AccountId(account),
                )
            )
            commands.append(self._deposit(account, USD, USD_DEPOSIT))
            for market in self.markets.values():
                commands.append(
                    self._deposit(account, Asset(market.spec.base), market.spec.base_deposit)
                )
        return commands

    def _deposit(self, account: str, asset: Asset, amount: Decimal) -> DepositFunds:
        meta = self._meta()
        return DepositFunds(
            **meta,
            account_id=AccountId(account),
            asset=asset,
            amount=amount,
        )

    def adopt(self, orders: Iterable[tuple[str, str, str, Side, int, int]]) -> None:
        """Take over resting orders left by an earlier run: (id, account, symbol, side, ticks,
        lots). Only symbols this simulator trades are kept."""
        for order_id, account, symbol, side, ticks, lots in orders:
            market = self.markets.get(symbol)
            if market is not None and order_id not in self._live_by_id:
                live = _Live(order_id, account, symbol, side, ticks, lots)
                market.live.append(live)
                self._live_by_id[order_id] = live

    def set_mid(self, symbol: str, ticks: int) -> None:
        """Start the random walk at the market's last price (for a restarted demo)."""
        market = self.markets[symbol]
        market.mid_ticks = market.reference_ticks = ticks

    # -- the flow ----------------------------------------------------------------------------

    def next_command(self) -> Command:
        """The next command of the flow."""
        if self._topups:
            account, asset = self._topups.pop(0)
            amount = USD_DEPOSIT if asset == USD else self._base_deposit(asset)
            return self._deposit(account, asset, amount)
        rng = self.rng
        market = self.markets[self.symbols[rng.randrange(len(self.symbols))]]
        self._walk(market)
        roll = rng.random()
        if len(market.live) > self.max_live:
            roll = 0.80  # too many quotes: the makers pull stale ones
        if roll < 0.55 or not market.live:
            return self._quote(market)
        if roll < 0.78:
            return self._take(market)
        if roll < 0.92:
            return self._cancel(market)
        return self._amend(market)

    def _base_deposit(self, asset: Asset) -> Decimal:
        for market in self.markets.values():
            if market.spec.base == asset:
                return market.spec.base_deposit
        return Decimal("1000")

    def _walk(self, market: _Market) -> None:
        """A random walk with a pull back toward the reference, so the band is never left."""
        ref = market.reference_ticks
        drift = (ref - market.mid_ticks) * 0.01
        step = round(self.rng.gauss(drift, market.unit * 0.5))
        market.mid_ticks = max(
            1, min(int(ref * 1.05), max(int(ref * 0.95), market.mid_ticks + step))
        )

    def _price(self, market: _Market, ticks: int) -> Decimal:
        return Decimal(ticks) * market.spec.tick_size

    def _lots(self, market: _Market, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randint(low, high)) * market.spec.lot_size

    def _order(
        self,
        market: _Market,
        account: str,
        side: Side,
        order_type: OrderType,
        price_ticks: int | None,
        quantity: Decimal | None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        budget: Decimal | None = None,
    ) -> PlaceOrder:
        meta = self._meta()
        oid = self._next_id("o")
        return PlaceOrder(
            **meta,
            account_id=AccountId(account),
            symbol=Symbol(market.spec.symbol),
            side=side,
            order_type=order_type,
            order_id=OrderId(oid),
            client_order_id=ClientOrderId(f"k{oid}"),
            price=None if price_ticks is None else self._price(market, price_ticks),
            quantity=quantity,
            quote_budget=budget,
            time_in_force=tif,
            post_only=post_only,
        )

    def _quote(self, market: _Market) -> PlaceOrder:
        rng = self.rng
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = 1 + int(rng.expovariate(1 / 6) * market.unit)
        price = market.mid_ticks - offset if side is Side.BUY else market.mid_ticks + offset
        maker = self.makers[rng.randrange(len(self.makers))]
        return self._order(
            market,
            maker,
            side,
            OrderType.LIMIT,
            max(1, price),
            self._lots(market, 1, 40),
            post_only=rng.random() < 0.2,
        )

    def _take(self, market: _Market) -> PlaceOrder:
        rng = self.rng
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        taker = self.takers[rng.randrange(len(self.takers))]
        kind = rng.random()
        if kind < 0.12:
            return self._order(
                market,
                taker,
                side,
                OrderType.MARKET,
                None,
                self._lots(market, 1, 20),
                tif=TimeInForce.IOC,
            )
        if kind < 0.16 and side is Side.BUY:
            budget = (
                Decimal(rng.randint(1, 20))
                * market.spec.lot_size
                * self._price(market, market.mid_ticks)
            ).quantize(Decimal("0.01"))
            return self._order(
                market,
                taker,
                side,
                OrderType.MARKET,
                None,
                None,
                tif=TimeInForce.IOC,
                budget=budget,
            )
        reach = rng.randint(0, 3 * market.unit)
        price = market.mid_ticks + reach if side is Side.BUY else market.mid_ticks - reach
        tif = TimeInForce.FOK if kind < 0.25 else TimeInForce.IOC
        if kind > 0.9:
            tif = TimeInForce.GTC  # an aggressive limit that may rest
        return self._order(
            market, taker, side, OrderType.LIMIT, max(1, price), self._lots(market, 1, 30), tif=tif
        )

    def _pick_live(self, market: _Market) -> _Live:
        if len(market.live) > self.max_live:
            return market.live[0]  # the oldest quote first
        return market.live[self.rng.randrange(len(market.live))]

    def _cancel(self, market: _Market) -> CancelOrder:
        live = self._pick_live(market)
        self._forget(live)  # now, so that concurrent clients do not cancel it twice
        meta = self._meta()
        return CancelOrder(
            **meta,
            account_id=AccountId(live.account_id),
            order_id=OrderId(live.order_id),
        )

    def _amend(self, market: _Market) -> AmendOrder:
        live = self._pick_live(market)
        meta = self._meta()
        if live.lots > 1 and self.rng.random() < 0.5:
            smaller = self.rng.randint(1, live.lots - 1)
            return AmendOrder(
                **meta,
                account_id=AccountId(live.account_id),
                order_id=OrderId(live.order_id),
                new_price=None,
                new_quantity=Decimal(smaller) * market.spec.lot_size,
            )
        away = self.rng.randint(1, 3 * market.unit)
        ticks = live.price_ticks - away if live.side is Side.BUY else live.price_ticks + away
        return AmendOrder(
            **meta,
            account_id=AccountId(live.account_id),
            order_id=OrderId(live.order_id),
            new_price=self._price(market, max(1, ticks)),
            new_quantity=None,
        )

    # -- feedback ----------------------------------------------------------------------------

    def observe(self, events: Iterable[Event]) -> None:
        """Learn from an outcome: what rests, what left the book, what ran out of funds."""
        for event in events:
            if isinstance(event, OrderRested):
                live = _Live(
                    event.order_id,
                    event.account_id,
                    event.symbol,
                    event.side,
                    event.price_ticks,
                    event.qty_lots,
                )
                market = self.markets.get(event.symbol)
                if market is not None:
                    market.live.append(live)
                    self._live_by_id[live.order_id] = live
            elif isinstance(event, TradeExecuted):
                maker = self._live_by_id.get(event.maker_order_id)
                if maker is not None:
                    maker.lots -= event.qty_lots
                    if maker.lots <= 0:
                        self._forget(maker)
                self.markets[event.symbol].reference_ticks = event.price_ticks
            elif isinstance(event, OrderCanceled):
                gone = self._live_by_id.get(event.order_id)
                if gone is not None:
                    self._forget(gone)
            elif isinstance(event, OrderAmended):
                amended = self._live_by_id.get(event.order_id)
                if amended is not None:
                    amended.price_ticks = event.new_price_ticks
                    amended.lots = event.new_qty_lots
            elif isinstance(event, OrderRejected) and event.reason is Reason.INSUFFICIENT_FUNDS:
                self._topup(event)

    def _forget(self, live: _Live) -> None:
        del self._live_by_id[live.order_id]
        self.markets[live.symbol].live.remove(live)

    def _topup(self, event: OrderRejected) -> None:
        market = self.markets.get(event.symbol)
        if market is None:
            return
        for asset in (USD, Asset(market.spec.base)):
            if (event.account_id, asset) not in self._topups:
                self._topups.append((event.account_id, asset))


class Submitter(Protocol):
    async def submit(self, command: Command) -> SubmitResult: ...


class SubmitResult(Protocol):
    @property
    def events(self) -> tuple[Event, ...]: ...

    @property
    def positions(self) -> tuple[int, ...]: ...

    @property
    def command_id(self) -> str: ...


@dataclass
class DriveStats:
    """What a run of ``drive`` did, for progress lines and the benchmarks."""

    submitted: int = 0
    acknowledged: int = 0
    failed: int = 0
    trades: int = 0
    rejections: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def line(self) -> str:
        end = time.monotonic() if self.finished is None else self.finished
        elapsed = max(1e-9, end - self.started)
        return (
            f"{self.acknowledged} commands acknowledged ({self.acknowledged / elapsed:,.0f}/s), "
            f"{self.trades} trades, {self.rejections} rejections, {self.failed} failed"
        )


async def drive(
    core: Submitter,
    sim: MarketSimulator,
    *,
    rate: float = 200.0,
    clients: int = 8,
    count: int | None = None,
    duration: float | None = None,
    on_ack: Callable[[Command, SubmitResult], Awaitable[None] | None] | None = None,
    stats: DriveStats | None = None,
) -> DriveStats:
    """Submit the flow with ``clients`` concurrent callers at ``rate`` commands/s in total
    (0 = as fast as the core answers) until ``count`` commands or ``duration`` seconds."""
    stats = stats if stats is not None else DriveStats()
    stats.started = time.monotonic()
    deadline = None if duration is None else time.monotonic() + duration
    interval = 0.0 if rate <= 0 else clients / rate
    loop = asyncio.get_running_loop()

    def more() -> bool:
        if count is not None and stats.submitted >= count:
            return False
        return deadline is None or time.monotonic() < deadline

    async def client(index: int) -> None:
        next_at = loop.time() + interval * index / max(1, clients)
        while more():
            if interval:
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            command = sim.next_command()
            stats.submitted += 1
            try:
                result = await core.submit(command)
            except Exception:
                stats.failed += 1
                raise
            stats.acknowledged += 1
            sim.observe(result.events)
            for event in result.events:
                if isinstance(event, TradeExecuted):
                    stats.trades += 1
                elif type(event).__name__ in ("OrderRejected", "CommandRejected"):
                    stats.rejections += 1
            if on_ack is not None:
                maybe = on_ack(command, result)
                if maybe is not None:
                    await maybe

    try:
        await asyncio.gather(*(client(i) for i in range(clients)))
    finally:
        stats.finished = time.monotonic()
    return stats
