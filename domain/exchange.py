"""The Exchange aggregate: instruments, accounts and balances, open orders, books and matching.

``Exchange.handle(command)`` validates and decides; each event it decides is applied at once
through ``Exchange.apply(event)``, which only mutates state (never decides). Replaying the
emitted events through ``apply`` on a fresh Exchange therefore rebuilds the same state,
checked byte for byte with ``state_hash()``.

Money rules (see ``domain.instruments`` for the arithmetic):

* balances are ints in asset atoms, per account and asset: ``available`` and ``reserved``;
* a buy reserves ``remaining_lots * buy_unit_cost(limit)`` of the quote asset (price plus
  the worst-case fee, rounded up per lot); a sell reserves ``remaining_lots`` of base;
  a market buy by budget reserves its whole budget; a market buy by quantity uses the
  upper edge of the price band as its limit;
* a fill releases exactly what the filled lots reserved, then debits the real cost; fees go
  to the venue fee account in the quote asset; cancels release what is left;
* for each asset, accounts + fee account change only by deposits and withdrawals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from domain.book import Order, OrderBook
from domain.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    DepositFunds,
    HaltTrading,
    ListInstrument,
    OpenAccount,
    PlaceOrder,
    ResumeTrading,
    WithdrawFunds,
)
from domain.events import (
    AccountOpened,
    CommandRejected,
    Event,
    FundsDeposited,
    FundsWithdrawn,
    InstrumentListed,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    OrderRested,
    TradeExecuted,
    TradingHalted,
    TradingResumed,
    WithdrawalRejected,
    from_dict,
    new_order_accepted,
    new_order_canceled,
    new_order_rejected,
    new_order_rested,
    new_trade_executed,
    to_dict,
)
from domain.instruments import BPS, Instrument, ListingError, build_instrument
from domain.outcome import Outcome, new_outcome
from domain.values import (
    MAX_UNITS,
    AccountId,
    Asset,
    CancelReason,
    ClientOrderId,
    ConversionError,
    OrderId,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
    TradingStatus,
    to_atoms,
    to_units,
)

__all__ = ["Account", "Balance", "ClientOrderRecord", "Exchange", "Outcome"]

SNAPSHOT_FORMAT = 1

# Rejections that do not claim the (account, client_order_id) key for idempotency.
_NOT_RECORDED = frozenset(
    {Reason.DUPLICATE_CLIENT_ORDER_ID, Reason.DUPLICATE_ORDER_ID, Reason.INVALID_CLIENT_ORDER_ID}
)

# How a matching pass ended.
_FILLED = 0
_NO_LIQUIDITY = 1
_BUDGET_EXHAUSTED = 2
_TAKER_CANCELED = 3

# Bound of each memo of exact Decimal -> units conversions (see ``Exchange._units``).
_UNITS_MEMO_LIMIT = 4096

_BUY = Side.BUY
_SELL = Side.SELL
_GTC = TimeInForce.GTC
_FOK = TimeInForce.FOK
_LIMIT = OrderType.LIMIT
_HALTED = TradingStatus.HALTED
_CANCEL_TAKER = SelfTradePrevention.CANCEL_TAKER
_CANCEL_MAKER = SelfTradePrevention.CANCEL_MAKER


class Balance:
    __slots__ = ("available", "reserved")

    def __init__(self, available: int = 0, reserved: int = 0) -> None:
        self.available = available
        self.reserved = reserved


class Account:
    __slots__ = ("account_id", "balances")

    def __init__(self, account_id: AccountId) -> None:
        self.account_id = account_id
        self.balances: dict[Asset, Balance] = {}

    def balance(self, asset: Asset) -> Balance:
        """The balance of ``asset``, created at zero (only ``apply`` may call this)."""
        bal = self.balances.get(asset)
        if bal is None:
            bal = Balance()
            self.balances[asset] = bal
        return bal

    def available(self, asset: Asset) -> int:
        bal = self.balances.get(asset)
        return 0 if bal is None else bal.available


class ClientOrderRecord:
    """The original outcome of a PlaceOrder, kept for idempotent retries."""

    __slots__ = ("events", "order_id")

    def __init__(self, order_id: OrderId, events: list[Event]) -> None:
        self.order_id = order_id
        self.events = events


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail


class Exchange:
    """The single-writer trading core for a set of instruments and accounts."""

    __slots__ = (
        "_bands",
        "_pending",
        "_recording",
        "_recording_command",
        "_units_memo",
        "accounts",
        "asset_decimals",
        "books",
        "client_orders",
        "fees",
        "instruments",
        "last_price",
        "order_seq",
        "orders",
        "trade_seq",
        "used_order_ids",
    )

    def __init__(self) -> None:
        self.instruments: dict[Symbol, Instrument] = {}
        self.books: dict[Symbol, OrderBook] = {}
        self.last_price: dict[Symbol, int] = {}
        self.asset_decimals: dict[Asset, int] = {}
        self.accounts: dict[AccountId, Account] = {}
        self.fees: dict[Asset, int] = {}
        self.orders: dict[OrderId, Order] = {}
        self.trade_seq = 0
        self.order_seq = 0
        self.used_order_ids: set[OrderId] = set()
        self.client_orders: dict[tuple[AccountId, ClientOrderId], ClientOrderRecord] = {}
        self._pending: list[Event] = []
        self._recording: ClientOrderRecord | None = None
        self._recording_command = ""
        # Derived caches, never part of the state: exact conversions already done, per unit,
        # and the price band of each symbol for the reference price it was last computed at.
        self._units_memo: dict[Decimal, dict[Decimal, int]] = {}
        self._bands: dict[Symbol, tuple[int, int, int]] = {}

    # ------------------------------------------------------------------ queries
    def balance(self, account_id: AccountId, asset: Asset) -> tuple[int, int]:
        """``(available, reserved)`` atoms of ``asset`` held by ``account_id``."""
        account = self.accounts.get(account_id)
        bal = None if account is None else account.balances.get(asset)
        return (0, 0) if bal is None else (bal.available, bal.reserved)

    def fee_balance(self, asset: Asset) -> int:
        return self.fees.get(asset, 0)

    def order(self, order_id: OrderId) -> Order | None:
        return self.orders.get(order_id)

    def reference_price(self, symbol: Symbol) -> int:
        """Last trade price in ticks, else the listing's reference price."""
        last = self.last_price.get(symbol)
        return self.instruments[symbol].reference_price_ticks if last is None else last

    # ------------------------------------------------------------------ decide
    def handle(self, command: Command) -> Outcome:
        """Decide ``command``; every event returned has already been applied."""
        self._pending = []
        if type(command) is PlaceOrder or isinstance(command, PlaceOrder):
            prior = self._place_order(command)
            if prior is not None:
                return prior
        elif isinstance(command, CancelOrder):
            self._cancel_order(command)
        elif isinstance(command, AmendOrder):
            self._amend_order(command)
        elif isinstance(command, CancelAllOrders):
            self._cancel_all_orders(command)
        elif isinstance(command, DepositFunds):
            self._deposit_funds(command)
        elif isinstance(command, WithdrawFunds):
            self._withdraw_funds(command)
        elif isinstance(command, OpenAccount):
            self._open_account(command)
        elif isinstance(command, ListInstrument):
            self._list_instrument(command)
        elif isinstance(command, HaltTrading):
            self._halt_trading(command)
        elif isinstance(command, ResumeTrading):
            self._resume_trading(command)
        else:
            raise TypeError(f"unknown command {type(command).__name__}")
        events = tuple(self._pending)
        self._pending = []
        return new_outcome(events, False)

    def handle_many(self, commands: Iterable[Command]) -> list[Outcome]:
        """``[self.handle(c) for c in commands]``: the batch form ``FastExchange`` also has. If a
        command raises, the ones before it stay decided and applied."""
        handle = self.handle
        return [handle(command) for command in commands]

    def account_orders(self, account_id: AccountId) -> list[Order]:
        """The account's open orders, in arrival order (a view: do not change them)."""
        return sorted(
            (o for o in self.orders.values() if o.account_id == account_id), key=lambda o: o.seq
        )

    def _emit(self, event: Event) -> None:
        self.apply(event)
        self._pending.append(event)

    def _units(self, value: Decimal, unit: Decimal) -> int:
        """``to_units(value, unit)``, remembered: orders repeat a few prices and sizes.

        Only successful conversions are kept, and each memo is emptied when it reaches
        ``_UNITS_MEMO_LIMIT`` entries, so the memo never changes a result, only its cost.
        """
        memo = self._units_memo.get(unit)
        if memo is None:
            memo = self._units_memo[unit] = {}
        try:
            return memo[value]
        except (KeyError, TypeError):  # TypeError: a signalling NaN cannot be hashed
            pass
        units = to_units(value, unit)
        if len(memo) >= _UNITS_MEMO_LIMIT:
            memo.clear()
        memo[value] = units
        return units

    def _band(self, symbol: Symbol, inst: Instrument) -> tuple[int, int]:
        """``inst.reference_band(reference price)``, recomputed only when the price moved."""
        last = self.last_price.get(symbol)
        ref = inst.reference_price_ticks if last is None else last
        cached = self._bands.get(symbol)
        if cached is not None and cached[0] == ref:
            return cached[1], cached[2]
        low, high = inst.reference_band(ref)
        self._bands[symbol] = (ref, low, high)
        return low, high

    def _reject_command(self, cmd: Command, subject: str, reason: Reason, detail: str = "") -> None:
        self._emit(
            CommandRejected(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                command_type=type(cmd).__name__,
                subject=subject,
                reason=reason,
                detail=detail,
            )
        )

    # -- instruments
    def _list_instrument(self, cmd: ListInstrument) -> None:
        if cmd.symbol in self.instruments:
            self._reject_command(cmd, cmd.symbol, Reason.INSTRUMENT_EXISTS)
            return
        try:
            build_instrument(
                symbol=cmd.symbol,
                base=cmd.base,
                quote=cmd.quote,
                base_decimals=cmd.base_decimals,
                quote_decimals=cmd.quote_decimals,
                tick_size=cmd.tick_size,
                lot_size=cmd.lot_size,
                min_qty=cmd.min_qty,
                max_qty=cmd.max_qty,
                reference_price=cmd.reference_price,
                price_band_bps=cmd.price_band_bps,
                maker_fee_bps=cmd.maker_fee_bps,
                taker_fee_bps=cmd.taker_fee_bps,
            )
        except (ListingError, ConversionError) as exc:
            self._reject_command(cmd, cmd.symbol, Reason.INVALID_INSTRUMENT, str(exc))
            return
        for asset, decimals in ((cmd.base, cmd.base_decimals), (cmd.quote, cmd.quote_decimals)):
            known = self.asset_decimals.get(asset)
            if known is not None and known != decimals:
                self._reject_command(
                    cmd, cmd.symbol, Reason.ASSET_DECIMALS_MISMATCH, f"{asset} has {known}"
                )
                return
        self._emit(
            InstrumentListed(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                symbol=cmd.symbol,
                base=cmd.base,
                quote=cmd.quote,
                base_decimals=cmd.base_decimals,
                quote_decimals=cmd.quote_decimals,
                tick_size=cmd.tick_size,
                lot_size=cmd.lot_size,
                min_qty=cmd.min_qty,
                max_qty=cmd.max_qty,
                reference_price=cmd.reference_price,
                price_band_bps=cmd.price_band_bps,
                maker_fee_bps=cmd.maker_fee_bps,
                taker_fee_bps=cmd.taker_fee_bps,
            )
        )

    def _halt_trading(self, cmd: HaltTrading) -> None:
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            self._reject_command(cmd, cmd.symbol, Reason.UNKNOWN_SYMBOL)
        elif inst.status is TradingStatus.HALTED:
            self._reject_command(cmd, cmd.symbol, Reason.ALREADY_HALTED)
        else:
            self._emit(
                TradingHalted(
                    command_id=cmd.command_id,
                    correlation_id=cmd.correlation_id,
                    timestamp_ns=cmd.timestamp_ns,
                    symbol=cmd.symbol,
                )
            )

    def _resume_trading(self, cmd: ResumeTrading) -> None:
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            self._reject_command(cmd, cmd.symbol, Reason.UNKNOWN_SYMBOL)
        elif inst.status is not TradingStatus.HALTED:
            self._reject_command(cmd, cmd.symbol, Reason.NOT_HALTED)
        else:
            self._emit(
                TradingResumed(
                    command_id=cmd.command_id,
                    correlation_id=cmd.correlation_id,
                    timestamp_ns=cmd.timestamp_ns,
                    symbol=cmd.symbol,
                )
            )

    # -- accounts and funds
    def _open_account(self, cmd: OpenAccount) -> None:
        if cmd.account_id in self.accounts:
            self._reject_command(cmd, cmd.account_id, Reason.ACCOUNT_EXISTS)
            return
        self._emit(
            AccountOpened(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                account_id=cmd.account_id,
            )
        )

    def _amount_in_atoms(self, account_id: AccountId, asset: Asset, amount: Decimal) -> int:
        if account_id not in self.accounts:
            raise _Reject(Reason.UNKNOWN_ACCOUNT)
        decimals = self.asset_decimals.get(asset)
        if decimals is None:
            raise _Reject(Reason.UNKNOWN_ASSET)
        try:
            atoms = to_atoms(amount, decimals)
        except ConversionError as exc:
            raise _Reject(Reason.INVALID_AMOUNT, str(exc)) from exc
        if atoms <= 0:
            raise _Reject(Reason.INVALID_AMOUNT, "amount must be positive")
        return atoms

    def _deposit_funds(self, cmd: DepositFunds) -> None:
        try:
            atoms = self._amount_in_atoms(cmd.account_id, cmd.asset, cmd.amount)
            if atoms >= MAX_UNITS:
                raise _Reject(Reason.INVALID_AMOUNT, "amount reaches 10^36 atoms: too large")
            bal = self.accounts[cmd.account_id].balances.get(cmd.asset)
            if bal is not None and bal.available + bal.reserved + atoms >= MAX_UNITS:
                raise _Reject(Reason.INVALID_AMOUNT, "the balance would reach 10^36 atoms")
        except _Reject as rej:
            self._reject_command(cmd, cmd.account_id, rej.reason, rej.detail)
            return
        self._emit(
            FundsDeposited(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                account_id=cmd.account_id,
                asset=cmd.asset,
                amount_atoms=atoms,
            )
        )

    def _withdraw_funds(self, cmd: WithdrawFunds) -> None:
        try:
            atoms = self._amount_in_atoms(cmd.account_id, cmd.asset, cmd.amount)
            if self.accounts[cmd.account_id].available(cmd.asset) < atoms:
                raise _Reject(Reason.INSUFFICIENT_FUNDS)
        except _Reject as rej:
            self._emit(
                WithdrawalRejected(
                    command_id=cmd.command_id,
                    correlation_id=cmd.correlation_id,
                    timestamp_ns=cmd.timestamp_ns,
                    account_id=cmd.account_id,
                    asset=cmd.asset,
                    requested=cmd.amount,
                    reason=rej.reason,
                )
            )
            return
        self._emit(
            FundsWithdrawn(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                account_id=cmd.account_id,
                asset=cmd.asset,
                amount_atoms=atoms,
            )
        )

    # -- orders
    def _place_order(self, cmd: PlaceOrder) -> Outcome | None:
        coid = cmd.client_order_id
        if coid:
            prior = self.client_orders.get((cmd.account_id, coid))
            if prior is not None:
                if prior.order_id == cmd.order_id:
                    return new_outcome(tuple(prior.events), True)
                self._reject_order(cmd, Reason.DUPLICATE_CLIENT_ORDER_ID)
                return None
        try:
            if not coid:
                raise _Reject(Reason.INVALID_CLIENT_ORDER_ID)
            if cmd.order_id in self.used_order_ids:
                raise _Reject(Reason.DUPLICATE_ORDER_ID)
            inst, price, lots, budget, reserve_asset, reserve = self._validate_order(cmd)
        except _Reject as rej:
            self._reject_order(cmd, rej.reason)
            return None
        accepted = new_order_accepted(
            cmd.command_id,
            cmd.correlation_id,
            cmd.timestamp_ns,
            cmd.order_id,
            cmd.account_id,
            cmd.symbol,
            coid,
            cmd.side,
            cmd.order_type,
            cmd.time_in_force,
            cmd.post_only,
            cmd.stp,
            price,
            lots,
            budget,
            reserve_asset,
            reserve,
        )
        order = self._apply_accepted(accepted)
        self._record_client_order(accepted)
        self._pending.append(accepted)
        book = self.books[cmd.symbol]
        if cmd.time_in_force is _FOK and not self._fok_fillable(order, book):
            self._cancel(order, CancelReason.FOK_UNFILLED, cmd)
            return None
        ended = self._match(order, book, inst, cmd)
        if ended in (_TAKER_CANCELED, _FILLED):
            return None
        if cmd.order_type is not _LIMIT:
            reason = (
                CancelReason.BUDGET_EXHAUSTED
                if ended == _BUDGET_EXHAUSTED
                else CancelReason.MARKET_NO_LIQUIDITY
            )
            self._cancel(order, reason, cmd)
        elif cmd.time_in_force is _GTC:
            rested = new_order_rested(
                cmd.command_id,
                cmd.correlation_id,
                cmd.timestamp_ns,
                order.order_id,
                order.account_id,
                order.symbol,
                order.side,
                order.price_ticks,
                order.remaining_lots,
            )
            (book.bids if order.side is _BUY else book.asks).append(order)
            self._record_client_order(rested)
            self._pending.append(rested)
        else:
            self._cancel(order, CancelReason.IOC_REMAINDER, cmd)
        return None

    def _reject_order(self, cmd: PlaceOrder, reason: Reason) -> None:
        self._emit(
            new_order_rejected(
                cmd.command_id,
                cmd.correlation_id,
                cmd.timestamp_ns,
                cmd.order_id,
                cmd.account_id,
                cmd.symbol,
                cmd.client_order_id,
                reason,
            )
        )

    def _validate_order(self, cmd: PlaceOrder) -> tuple[Instrument, int, int, int, Asset, int]:
        """Return (instrument, limit ticks, lots, budget atoms, reserved asset, reserved atoms)."""
        account = self.accounts.get(cmd.account_id)
        if account is None:
            raise _Reject(Reason.UNKNOWN_ACCOUNT)
        symbol = cmd.symbol
        inst = self.instruments.get(symbol)
        if inst is None:
            raise _Reject(Reason.UNKNOWN_SYMBOL)
        if inst.status is _HALTED:
            raise _Reject(Reason.TRADING_HALTED)
        is_buy = cmd.side is _BUY
        price_in = cmd.price
        qty_in = cmd.quantity
        budget_in = cmd.quote_budget
        if cmd.order_type is _LIMIT:
            if price_in is None:
                raise _Reject(Reason.INVALID_PRICE, "a limit order needs a price")
            if qty_in is None or budget_in is not None:
                raise _Reject(Reason.INVALID_QUANTITY, "a limit order needs a quantity")
            if cmd.post_only and cmd.time_in_force is not _GTC:
                raise _Reject(Reason.INVALID_POST_ONLY, "post-only orders must be GTC")
        else:
            if price_in is not None:
                raise _Reject(Reason.INVALID_PRICE, "a market order has no price")
            if cmd.post_only:
                raise _Reject(Reason.INVALID_POST_ONLY, "a market order cannot be post-only")
            if (qty_in is None) == (budget_in is None):
                raise _Reject(Reason.INVALID_QUANTITY, "give exactly one of quantity, budget")
            if budget_in is not None and not is_buy:
                raise _Reject(Reason.INVALID_QUANTITY, "only a market buy may have a budget")
            if budget_in is not None and cmd.time_in_force is _FOK:
                raise _Reject(Reason.INVALID_TIME_IN_FORCE, "a budget order cannot be FOK")
        lots = 0
        if qty_in is not None:
            try:
                lots = self._units(qty_in, inst.lot_size)
            except ConversionError as exc:
                raise _Reject(Reason.LOT_SIZE) from exc
            if lots <= 0:
                raise _Reject(Reason.INVALID_QUANTITY)
            if lots < inst.min_qty_lots:
                raise _Reject(Reason.MIN_QTY)
            if lots > inst.max_qty_lots:
                raise _Reject(Reason.MAX_QTY)
        budget = 0
        if budget_in is not None:
            try:
                budget = to_atoms(budget_in, inst.quote_decimals)
            except ConversionError as exc:
                raise _Reject(Reason.INVALID_AMOUNT) from exc
            if budget <= 0:
                raise _Reject(Reason.INVALID_AMOUNT)
        low, high = self._band(symbol, inst)
        if price_in is not None:
            try:
                price = self._units(price_in, inst.tick_size)
            except ConversionError as exc:
                raise _Reject(Reason.TICK_SIZE) from exc
            if price <= 0:
                raise _Reject(Reason.INVALID_PRICE)
            if price < low or price > high:
                raise _Reject(Reason.PRICE_BAND)
            if cmd.post_only and self.books[symbol].crosses(cmd.side, price):
                raise _Reject(Reason.POST_ONLY_WOULD_TAKE)
        else:
            price = high if is_buy else low
        if is_buy:
            asset = inst.quote
            if budget:
                need = budget
            else:
                # lots * inst.buy_unit_cost(price), inlined
                one_lot = price * inst.quote_atoms_per_tick_lot
                need = lots * (one_lot - ((-one_lot * inst.max_fee_bps) // BPS))
        else:
            asset = inst.base
            need = lots * inst.base_atoms_per_lot
        bal = account.balances.get(asset)
        if (0 if bal is None else bal.available) < need:
            raise _Reject(Reason.INSUFFICIENT_FUNDS)
        return inst, price, lots, budget, asset, need

    def _fok_fillable(self, order: Order, book: OrderBook) -> bool:
        """Could ``order`` fill completely right now (self-trade prevention included)?"""
        need = order.remaining_lots
        is_buy = order.side is Side.BUY
        opposite = book.opposite(order.side)
        for price in opposite.prices_by_priority():
            if (price > order.price_ticks) if is_buy else (price < order.price_ticks):
                break
            for maker in opposite.level(price):
                if maker.account_id == order.account_id:
                    if order.stp is SelfTradePrevention.CANCEL_MAKER:
                        continue
                    return False
                need -= maker.remaining_lots
                if need <= 0:
                    return True
        return False

    def _match(self, order: Order, book: OrderBook, inst: Instrument, cmd: Command) -> int:
        """Take liquidity for ``order`` until filled, out of price, or stopped."""
        is_buy = order.side is _BUY
        opposite = book.asks if is_buy else book.bids
        prices = opposite.prices
        levels = opposite.levels
        limit = order.price_ticks
        taker_id = order.order_id
        taker_account = order.account_id
        budget = order.budget
        symbol = order.symbol
        pending = self._pending
        while True:
            if not prices:
                return _NO_LIQUIDITY
            if is_buy:
                best = prices[0]
                if best > limit:
                    return _NO_LIQUIDITY
            else:
                best = prices[-1]
                if best < limit:
                    return _NO_LIQUIDITY
            maker = levels[best][0]
            if maker.account_id == taker_account:
                mode = order.stp
                if mode is not _CANCEL_TAKER:
                    self._cancel(maker, CancelReason.SELF_TRADE_PREVENTION, cmd)
                if mode is not _CANCEL_MAKER:
                    self._cancel(order, CancelReason.SELF_TRADE_PREVENTION, cmd)
                    return _TAKER_CANCELED
                continue
            if budget:
                qty = order.reserved_atoms // inst.taker_unit_cost(best)
                if qty > maker.remaining_lots:
                    qty = maker.remaining_lots
                if qty <= 0:
                    return _BUDGET_EXHAUSTED
            else:
                qty = order.remaining_lots
                if maker.remaining_lots < qty:
                    qty = maker.remaining_lots
            notional = best * qty * inst.quote_atoms_per_tick_lot
            trade = new_trade_executed(
                cmd.command_id,
                cmd.correlation_id,
                cmd.timestamp_ns,
                symbol,
                self.trade_seq + 1,
                best,
                qty,
                notional,
                maker.order_id,
                taker_id,
                maker.account_id,
                taker_account,
                order.side,
                -((-notional * inst.maker_fee_bps) // BPS),
                -((-notional * inst.taker_fee_bps) // BPS),
            )
            self._settle_trade(trade, inst, maker, order, book)
            self._record_client_order(trade)
            pending.append(trade)
            if not budget and order.remaining_lots == 0:
                return _FILLED

    def _cancel(self, order: Order, reason: CancelReason, cmd: Command) -> None:
        self._emit(
            new_order_canceled(
                cmd.command_id,
                cmd.correlation_id,
                cmd.timestamp_ns,
                order.order_id,
                order.account_id,
                order.symbol,
                reason,
                order.remaining_lots,
                order.reserved_asset,
                order.reserved_atoms,
            )
        )

    def _owned_order(self, cmd: CancelOrder | AmendOrder) -> Order:
        order = self.orders.get(cmd.order_id)
        if order is None:
            raise _Reject(Reason.UNKNOWN_ORDER)
        if order.account_id != cmd.account_id:
            raise _Reject(Reason.NOT_ORDER_OWNER)
        return order

    def _cancel_order(self, cmd: CancelOrder) -> None:
        try:
            order = self._owned_order(cmd)
        except _Reject as rej:
            self._reject_command(cmd, cmd.order_id, rej.reason)
            return
        self._cancel(order, CancelReason.REQUESTED, cmd)

    def _cancel_all_orders(self, cmd: CancelAllOrders) -> None:
        if cmd.account_id not in self.accounts:
            self._reject_command(cmd, cmd.account_id, Reason.UNKNOWN_ACCOUNT)
            return
        if cmd.symbol is not None and cmd.symbol not in self.instruments:
            self._reject_command(cmd, cmd.symbol, Reason.UNKNOWN_SYMBOL)
            return
        mine = [
            o
            for o in self.orders.values()
            if o.account_id == cmd.account_id and (cmd.symbol is None or o.symbol == cmd.symbol)
        ]
        mine.sort(key=_by_seq)
        for order in mine:
            self._cancel(order, CancelReason.CANCEL_ALL, cmd)

    def _amend_order(self, cmd: AmendOrder) -> None:
        try:
            order = self._owned_order(cmd)
            inst = self.instruments[order.symbol]
            if inst.status is TradingStatus.HALTED:
                raise _Reject(Reason.TRADING_HALTED)
            if cmd.new_price is None and cmd.new_quantity is None:
                raise _Reject(Reason.NOTHING_TO_AMEND)
            price = order.price_ticks
            if cmd.new_price is not None:
                try:
                    price = inst.price_to_ticks(cmd.new_price)
                except ConversionError as exc:
                    raise _Reject(Reason.TICK_SIZE) from exc
                if price <= 0:
                    raise _Reject(Reason.INVALID_PRICE)
                low, high = inst.reference_band(self.reference_price(order.symbol))
                if price < low or price > high:
                    raise _Reject(Reason.PRICE_BAND)
            lots = order.remaining_lots
            if cmd.new_quantity is not None:
                try:
                    lots = inst.qty_to_lots(cmd.new_quantity)
                except ConversionError as exc:
                    raise _Reject(Reason.LOT_SIZE) from exc
                if lots <= 0:
                    raise _Reject(Reason.INVALID_QUANTITY)
                if lots > inst.max_qty_lots:
                    raise _Reject(Reason.MAX_QTY)
            if price == order.price_ticks and lots == order.remaining_lots:
                raise _Reject(Reason.NOTHING_TO_AMEND)
            if price != order.price_ticks and self.books[order.symbol].crosses(order.side, price):
                raise _Reject(Reason.AMEND_WOULD_TAKE)
            if order.side is Side.BUY:
                reserve = lots * inst.buy_unit_cost(price)
            else:
                reserve = inst.base_atoms(lots)
            extra = reserve - order.reserved_atoms
            if extra > self.accounts[order.account_id].available(order.reserved_asset):
                raise _Reject(Reason.INSUFFICIENT_FUNDS)
        except _Reject as rej:
            self._reject_command(cmd, cmd.order_id, rej.reason, rej.detail)
            return
        self._emit(
            OrderAmended(
                command_id=cmd.command_id,
                correlation_id=cmd.correlation_id,
                timestamp_ns=cmd.timestamp_ns,
                order_id=order.order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                old_price_ticks=order.price_ticks,
                new_price_ticks=price,
                old_qty_lots=order.remaining_lots,
                new_qty_lots=lots,
                priority_kept=price == order.price_ticks and lots < order.remaining_lots,
                reserved_atoms=reserve,
            )
        )

    # ------------------------------------------------------------------ evolve
    def apply(self, event: Event) -> None:
        """Mutate state by one event. Never validates or decides: replay-safe."""
        kind = type(event)
        # Exact-type tests first (the common events, cheapest check); isinstance for the rest.
        if kind is TradeExecuted:
            self._apply_trade(event)  # type: ignore[arg-type]
        elif kind is OrderAccepted:
            self._apply_accepted(event)  # type: ignore[arg-type]
        elif kind is OrderRested or isinstance(event, OrderRested):
            order = self.orders[event.order_id]  # type: ignore[attr-defined]
            self.books[event.symbol].side(event.side).append(order)  # type: ignore[attr-defined]
        elif isinstance(event, TradeExecuted):
            self._apply_trade(event)
        elif isinstance(event, OrderAccepted):
            self._apply_accepted(event)
        elif isinstance(event, OrderCanceled):
            self._apply_canceled(event)
        elif isinstance(event, OrderAmended):
            self._apply_amended(event)
        elif isinstance(event, OrderRejected):
            if event.reason not in _NOT_RECORDED:
                self.used_order_ids.add(event.order_id)
        elif isinstance(event, FundsDeposited):
            self.accounts[event.account_id].balance(event.asset).available += event.amount_atoms
        elif isinstance(event, FundsWithdrawn):
            self.accounts[event.account_id].balance(event.asset).available -= event.amount_atoms
        elif isinstance(event, AccountOpened):
            self.accounts[event.account_id] = Account(event.account_id)
        elif isinstance(event, InstrumentListed):
            self._apply_listed(event)
        elif isinstance(event, TradingHalted):
            inst = self.instruments[event.symbol]
            self.instruments[event.symbol] = inst.with_status(TradingStatus.HALTED)
        elif isinstance(event, TradingResumed):
            inst = self.instruments[event.symbol]
            self.instruments[event.symbol] = inst.with_status(TradingStatus.TRADING)
        elif isinstance(event, CommandRejected | WithdrawalRejected):
            pass
        else:
            raise TypeError(f"unknown event {type(event).__name__}")
        self._record_client_order(event)

    def _record_client_order(self, event: Event) -> None:
        """Remember each PlaceOrder's outcome events, keyed by (account, client order id)."""
        kind = type(event)
        if (
            kind is not TradeExecuted
            and kind is not OrderRested
            and (
                isinstance(event, OrderAccepted)
                or (isinstance(event, OrderRejected) and event.reason not in _NOT_RECORDED)
            )
        ):
            record = ClientOrderRecord(event.order_id, [event])
            key = (event.account_id, event.client_order_id)
            self.client_orders[key] = record
            self._recording = record
            self._recording_command = event.command_id
            return
        recording = self._recording
        if recording is not None:
            if event.command_id == self._recording_command:
                recording.events.append(event)
            else:
                self._recording = None

    def _apply_listed(self, event: InstrumentListed) -> None:
        inst = build_instrument(
            symbol=event.symbol,
            base=event.base,
            quote=event.quote,
            base_decimals=event.base_decimals,
            quote_decimals=event.quote_decimals,
            tick_size=event.tick_size,
            lot_size=event.lot_size,
            min_qty=event.min_qty,
            max_qty=event.max_qty,
            reference_price=event.reference_price,
            price_band_bps=event.price_band_bps,
            maker_fee_bps=event.maker_fee_bps,
            taker_fee_bps=event.taker_fee_bps,
        )
        self.instruments[event.symbol] = inst
        self.books[event.symbol] = OrderBook(event.symbol)
        self.asset_decimals[event.base] = event.base_decimals
        self.asset_decimals[event.quote] = event.quote_decimals

    def _apply_accepted(self, event: OrderAccepted) -> Order:
        self.order_seq += 1
        order_id = event.order_id
        self.used_order_ids.add(order_id)
        order = Order(
            order_id,
            event.account_id,
            event.symbol,
            event.client_order_id,
            event.side,
            event.order_type,
            event.time_in_force,
            event.post_only,
            event.stp,
            event.price_ticks,
            event.qty_lots,
            event.quote_budget_atoms > 0,
            event.reserved_asset,
            event.reserved_atoms,
            self.order_seq,
        )
        self.orders[order_id] = order
        bal = self.accounts[event.account_id].balance(event.reserved_asset)
        bal.available -= event.reserved_atoms
        bal.reserved += event.reserved_atoms
        return order

    def _apply_trade(self, event: TradeExecuted) -> None:
        orders = self.orders
        self._settle_trade(
            event,
            self.instruments[event.symbol],
            orders[event.maker_order_id],
            orders[event.taker_order_id],
            self.books[event.symbol],
        )

    def _settle_trade(
        self, event: TradeExecuted, inst: Instrument, maker: Order, taker: Order, book: OrderBook
    ) -> None:
        """The state change of a trade, once its instrument, orders and book are looked up."""
        qty = event.qty_lots
        notional = event.notional_atoms
        if event.taker_side is _BUY:
            buyer, seller = taker, maker
            buyer_fee, seller_fee = event.taker_fee_atoms, event.maker_fee_atoms
        else:
            buyer, seller = maker, taker
            buyer_fee, seller_fee = event.maker_fee_atoms, event.taker_fee_atoms
        base_atoms = qty * inst.base_atoms_per_lot
        quote = inst.quote
        base = inst.base
        accounts = self.accounts
        # buyer: release what these lots reserved, pay notional + fee, receive base
        buyer_account = accounts[buyer.account_id]
        cost = notional + buyer_fee
        if buyer.budget:
            release = cost
        else:
            one_lot = buyer.price_ticks * inst.quote_atoms_per_tick_lot
            release = qty * (one_lot - ((-one_lot * inst.max_fee_bps) // BPS))
        quote_bal = buyer_account.balance(quote)
        quote_bal.reserved -= release
        quote_bal.available += release - cost
        buyer.reserved_atoms -= release
        buyer_account.balance(base).available += base_atoms
        # seller: release and deliver base, receive notional - fee
        seller_account = accounts[seller.account_id]
        seller_account.balance(base).reserved -= base_atoms
        seller.reserved_atoms -= base_atoms
        seller_account.balance(quote).available += notional - seller_fee
        # venue
        fees = self.fees
        fees[quote] = fees.get(quote, 0) + buyer_fee + seller_fee
        self.trade_seq = event.trade_id
        self.last_price[event.symbol] = event.price_ticks
        maker.remaining_lots -= qty
        if maker.remaining_lots == 0:
            (book.bids if maker.side is _BUY else book.asks).remove(maker)
            del self.orders[maker.order_id]
        if not taker.budget:
            taker.remaining_lots -= qty
            if taker.remaining_lots == 0:
                del self.orders[taker.order_id]

    def _apply_canceled(self, event: OrderCanceled) -> None:
        order = self.orders.pop(event.order_id)
        if order.resting:
            self.books[event.symbol].side(order.side).remove(order)
        bal = self.accounts[event.account_id].balance(event.released_asset)
        bal.reserved -= event.released_atoms
        bal.available += event.released_atoms

    def _apply_amended(self, event: OrderAmended) -> None:
        order = self.orders[event.order_id]
        side = self.books[event.symbol].side(order.side)
        if not event.priority_kept:
            side.remove(order)
        order.price_ticks = event.new_price_ticks
        order.remaining_lots = event.new_qty_lots
        extra = event.reserved_atoms - order.reserved_atoms
        order.reserved_atoms = event.reserved_atoms
        bal = self.accounts[event.account_id].balance(order.reserved_asset)
        bal.available -= extra
        bal.reserved += extra
        if not event.priority_kept:
            side.append(order)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """JSON-safe, canonical (up to key order) dump of the full state."""
        return {
            "format": SNAPSHOT_FORMAT,
            "instruments": {s: _instrument_to_dict(i) for s, i in self.instruments.items()},
            "last_price": dict(self.last_price),
            "asset_decimals": dict(self.asset_decimals),
            "accounts": {
                a: {asset: [b.available, b.reserved] for asset, b in acc.balances.items()}
                for a, acc in self.accounts.items()
            },
            "fees": dict(self.fees),
            "orders": [o.to_dict() for o in sorted(self.orders.values(), key=_by_seq)],
            "books": {
                s: {
                    "bids": [o.order_id for o in b.bids.orders_by_priority()],
                    "asks": [o.order_id for o in b.asks.orders_by_priority()],
                }
                for s, b in self.books.items()
            },
            "trade_seq": self.trade_seq,
            "order_seq": self.order_seq,
            "used_order_ids": sorted(self.used_order_ids),
            "client_orders": [
                [acc, coid, rec.order_id, [to_dict(e) for e in rec.events]]
                for (acc, coid), rec in sorted(self.client_orders.items())
            ],
        }

    def state_hash(self) -> str:
        """sha256 of the canonical JSON of ``snapshot()`` (sorted keys, book order kept)."""
        canonical = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Exchange:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {data.get('format')!r}")
        ex = cls()
        for sym, raw in data["instruments"].items():
            ex.instruments[Symbol(sym)] = _instrument_from_dict(raw)
            ex.books[Symbol(sym)] = OrderBook(Symbol(sym))
        ex.last_price = {Symbol(s): int(p) for s, p in data["last_price"].items()}
        ex.asset_decimals = {Asset(a): int(d) for a, d in data["asset_decimals"].items()}
        for acc_id, balances in data["accounts"].items():
            account = Account(AccountId(acc_id))
            for asset, (available, reserved) in balances.items():
                account.balances[Asset(asset)] = Balance(int(available), int(reserved))
            ex.accounts[account.account_id] = account
        ex.fees = {Asset(a): int(v) for a, v in data["fees"].items()}
        for raw in data["orders"]:
            order = Order.from_dict(raw)
            ex.orders[order.order_id] = order
        for sym, sides in data["books"].items():
            book = ex.books[Symbol(sym)]
            for oid in sides["bids"]:
                book.bids.append(ex.orders[OrderId(oid)])
            for oid in sides["asks"]:
                book.asks.append(ex.orders[OrderId(oid)])
        ex.trade_seq = int(data["trade_seq"])
        ex.order_seq = int(data["order_seq"])
        ex.used_order_ids = {OrderId(o) for o in data["used_order_ids"]}
        for acc, coid, oid, events in data["client_orders"]:
            ex.client_orders[(AccountId(acc), ClientOrderId(coid))] = ClientOrderRecord(
                OrderId(oid), [from_dict(e) for e in events]
            )
        return ex


def _by_seq(order: Order) -> int:
    return order.seq


def _instrument_to_dict(inst: Instrument) -> dict[str, str | int]:
    return {
        "symbol": inst.symbol,
        "base": inst.base,
        "quote": inst.quote,
        "base_decimals": inst.base_decimals,
        "quote_decimals": inst.quote_decimals,
        "tick_size": str(inst.tick_size),
        "lot_size": str(inst.lot_size),
        "min_qty_lots": inst.min_qty_lots,
        "max_qty_lots": inst.max_qty_lots,
        "reference_price_ticks": inst.reference_price_ticks,
        "price_band_bps": inst.price_band_bps,
        "maker_fee_bps": inst.maker_fee_bps,
        "taker_fee_bps": inst.taker_fee_bps,
        "status": inst.status.value,
        "quote_atoms_per_tick_lot": inst.quote_atoms_per_tick_lot,
        "base_atoms_per_lot": inst.base_atoms_per_lot,
    }


def _instrument_from_dict(raw: dict[str, Any]) -> Instrument:
    return Instrument(
        symbol=Symbol(raw["symbol"]),
        base=Asset(raw["base"]),
        quote=Asset(raw["quote"]),
        base_decimals=int(raw["base_decimals"]),
        quote_decimals=int(raw["quote_decimals"]),
        tick_size=Decimal(raw["tick_size"]),
        lot_size=Decimal(raw["lot_size"]),
        min_qty_lots=int(raw["min_qty_lots"]),
        max_qty_lots=int(raw["max_qty_lots"]),
        reference_price_ticks=int(raw["reference_price_ticks"]),
        price_band_bps=int(raw["price_band_bps"]),
        maker_fee_bps=int(raw["maker_fee_bps"]),
        taker_fee_bps=int(raw["taker_fee_bps"]),
        status=TradingStatus(raw["status"]),
        quote_atoms_per_tick_lot=int(raw["quote_atoms_per_tick_lot"]),
        base_atoms_per_lot=int(raw["base_atoms_per_lot"]),
    )
