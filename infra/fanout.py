"""Live market data through Redis pub/sub: the publisher beside the core, the per-process feed.

The **publisher** (`LivePublisher`) is the core's `on_commit` hook. The hook only appends the
committed batch to a deque; a publisher task turns batches into channel messages and writes
them to Redis, one Lua script per round (atomic, as a MULTI/EXEC would be):

* `<prefix>live:<channel>` — the pub/sub channel; messages are JSON
  `{"channel", "seq", "type", "data"}`;
* `<prefix>live:state:<channel>` — a hash holding the channel's current snapshot (the L2
  book's levels, a ticker, the current candle, the last trade, an account's open orders),
  updated in the same transaction as the publish, so a snapshot and its `seq` always agree;
* `<prefix>live:seq` — a hash of the last `seq` of every channel;
* `<prefix>live:symbols` — the listed symbols.

Sequence numbers are kept by the single publisher (there is one core per log) and are
gap-free per channel as long as every message reaches Redis. A message that cannot be written
(Redis down or too slow, the bounded queue full) is dropped and counted, never retried, and
never blocks a commit; its `seq` stays used, so subscribers see the gap and ask for a fresh
snapshot, and the publisher rewrites every snapshot from memory once Redis answers again. A
restarted publisher skips one `seq` on every channel for the same reason (it cannot know
whether its predecessor's last messages arrived).

The **feed** (`RedisLiveFeed`) is one pub/sub connection per gateway process shared by all of
its subscribers: a Redis channel is subscribed while anyone listens to it. It reads snapshots
for the WebSocket channels and offers `subscribe(channel)`, an async iterator of messages
(snapshot first) for GraphQL subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from commands.ports import RecordedEvent
from gateway import jsontext
from gateway.health import ComponentHealth, HealthProbe
from gateway.ports import ServiceUnavailable
from gateway.ws.channels import (
    CANDLE_INTERVALS,
    Channel,
    ChannelSnapshot,
    Listener,
    parse_channel,
)
from infra.auth_store import Coalescer

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_dumps = jsontext.dumps  # orjson: the publisher writes every message and snapshot field


# The fields of its AlertCreated an open alert is kept with (the alerts channel's snapshot).
_ALERT_FIELDS = (
    "alert_id", "account_id", "symbol", "condition", "level_ticks", "pct_bps", "window_s",
    "last_price_ticks", "timestamp_ns",
)  # fmt: skip

# -- what the publisher derives from the log -------------------------------------------------------


@dataclass(slots=True)
class Message:
    """One channel message and the snapshot change that goes with it."""

    channel: str
    type: str
    data: dict[str, Any]
    # state: field -> JSON text, or None to delete the field
    state: dict[str, str | None] = field(default_factory=dict)
    reset_state: bool = False  # replace the channel's whole snapshot with `state`


Level = list[int]  # [lots, orders]


class LiveState:
    """The snapshots the publisher keeps in memory, and the messages each batch produces.

    Built from the core's exchange once (`seed`), then folded forward with every committed
    batch, decoded from the events' canonical JSON. Holds L2 levels (lots and order count per
    price), the open orders per account, the last trade, the current candles and the ticker.
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.symbols: set[str] = set()
        self.books: dict[str, tuple[dict[int, Level], dict[int, Level]]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_account: dict[str, set[str]] = {}
        self.last_trade: dict[str, dict[str, Any]] = {}
        self.last_price: dict[str, int] = {}
        self.candles: dict[tuple[str, str], dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, dict[str, Any]]] = {}  # account -> id -> open alert

    # -- seeding ----------------------------------------------------------------------------------

    def seed(self, exchange: Any, alerts: Iterable[Any] = ()) -> None:
        """The state of a freshly recovered core. `exchange` is any exchange with the
        domain's API (the Python one or the native kernel's): only `instruments`, `books`
        (`bids`/`asks` with `prices` and `levels`), `orders` and `last_price` are read.
        `alerts`: the core's `domain.alerts.Alert`s (the active ones are kept)."""
        self._clear()
        for alert in alerts:
            if alert.status.value == "active":
                # as its AlertCreated said: the domain's names, but for these two
                fields = {name: getattr(alert, name, None) for name in _ALERT_FIELDS}
                fields["condition"] = alert.condition.value
                fields["timestamp_ns"] = alert.created_at_ns
                self._arm(fields)
        for symbol in exchange.instruments:
            self._add_symbol(str(symbol))
        for symbol, book in exchange.books.items():
            bids, asks = self._book(str(symbol))
            for side, levels in ((book.bids, bids), (book.asks, asks)):
                for price in side.prices:
                    queue = side.levels[price]
                    levels[price] = [sum(o.remaining_lots for o in queue), len(queue)]
        for order in exchange.orders.values():
            if order.resting:
                self._open(
                    {
                        "order_id": str(order.order_id),
                        "account_id": str(order.account_id),
                        "symbol": str(order.symbol),
                        "client_order_id": str(order.client_order_id),
                        "side": order.side.value,
                        "order_type": order.order_type.value,
                        "time_in_force": order.time_in_force.value,
                        "price_ticks": order.price_ticks,
                        "remaining_lots": order.remaining_lots,
                        "resting": True,
                    }
                )
        self.last_price = {str(s): p for s, p in exchange.last_price.items()}

    def _arm(self, alert: dict[str, Any]) -> str:
        """Keep an open alert (the fields of its AlertCreated); returns its snapshot text."""
        self.alerts.setdefault(alert["account_id"], {})[alert["alert_id"]] = alert
        return _dumps(alert)

    def _disarm(self, account: str, alert_id: str) -> None:
        open_alerts = self.alerts.get(account)
        if open_alerts is not None:
            open_alerts.pop(alert_id, None)
            if not open_alerts:
                del self.alerts[account]

    def _add_symbol(self, symbol: str) -> None:
        self.symbols.add(symbol)
        self._book(symbol)

    def _book(self, symbol: str) -> tuple[dict[int, Level], dict[int, Level]]:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = ({}, {})
        return book

    def _open(self, order: dict[str, Any]) -> None:
        self.orders[order["order_id"]] = order
        self.by_account.setdefault(order["account_id"], set()).add(order["order_id"])

    def _close(self, order_id: str) -> dict[str, Any] | None:
        order = self.orders.pop(order_id, None)
        if order is not None:
            ids = self.by_account.get(order["account_id"])
            if ids is not None:
                ids.discard(order_id)
                if not ids:
                    del self.by_account[order["account_id"]]
        return order

    # -- snapshots --------------------------------------------------------------------------------

    def full_state(self) -> list[Message]:
        """Every channel's whole snapshot, to rewrite Redis after a restart or a loss."""
        out = []
        for symbol in sorted(self.symbols):
            bids, asks = self._book(symbol)
            state: dict[str, str | None] = {f"b:{p}": f"{v[0]}:{v[1]}" for p, v in bids.items()}
            state.update({f"a:{p}": f"{v[0]}:{v[1]}" for p, v in asks.items()})
            out.append(Message(f"book.{symbol}", "reset", {}, state, reset_state=True))
            ticker = self.ticker(symbol)
            out.append(Message(f"ticker.{symbol}", "reset", {}, {"ticker": _dumps(ticker)}, True))
            trade = self.last_trade.get(symbol)
            last = {} if trade is None else {"last": _dumps(trade)}
            out.append(Message(f"trades.{symbol}", "reset", {}, dict(last), True))
        for (symbol, interval), candle in sorted(self.candles.items()):
            state = {"candle": _dumps(candle)}
            out.append(Message(f"candles.{symbol}.{interval}", "reset", {}, state, True))
        for account, ids in sorted(self.by_account.items()):
            state = {oid: _dumps(self.orders[oid]) for oid in sorted(ids)}
            out.append(Message(f"orders.{account}", "reset", {}, state, True))
        for account, open_alerts in sorted(self.alerts.items()):
            state = {aid: _dumps(alert) for aid, alert in sorted(open_alerts.items())}
            out.append(Message(f"alerts.{account}", "reset", {}, state, True))
        return out

    def ticker(self, symbol: str) -> dict[str, Any]:
        bids, asks = self._book(symbol)
        bid = max(bids) if bids else None
        ask = min(asks) if asks else None
        trade = self.last_trade.get(symbol)
        return {
            "symbol": symbol,
            "last_price_ticks": self.last_price.get(symbol),
            "last_qty_lots": None if trade is None else trade["qty_lots"],
            "last_trade_id": None if trade is None else trade["trade_id"],
            "bid_ticks": bid,
            "bid_lots": None if bid is None else bids[bid][0],
            "ask_ticks": ask,
            "ask_lots": None if ask is None else asks[ask][0],
        }

    # -- folding a batch --------------------------------------------------------------------------

    def fold(self, batch: Iterable[RecordedEvent]) -> list[Message]:
        """The messages of one committed batch, in log order per channel."""
        out: list[Message] = []
        changed: dict[str, tuple[dict[int, Level | None], dict[int, Level | None]]] = {}
        tops: dict[str, None] = {}
        candles: dict[tuple[str, str], None] = {}
        transient: list[str] = []  # orders not resting: gone once their command's events end
        self._last: dict[str, Message] = {}  # the batch's last message per private channel
        loads = jsontext.loads
        for record in batch:
            kind = record.event.event_type
            if kind not in _WANTED and not kind.startswith("Alert"):
                continue
            d: dict[str, Any] = loads(record.event.payload)
            d["position"] = record.position
            if kind == "TradeExecuted":
                symbol = d["symbol"]
                maker_side = "sell" if d["taker_side"] == "buy" else "buy"
                self._level(changed, symbol, maker_side, d["price_ticks"], -d["qty_lots"], 0)
                maker = self.orders.get(d["maker_order_id"])
                if maker is not None:
                    maker["remaining_lots"] -= d["qty_lots"]
                    if maker["remaining_lots"] <= 0:
                        self._close(maker["order_id"])
                        self._level(changed, symbol, maker_side, d["price_ticks"], 0, -1)
                taker = self.orders.get(d["taker_order_id"])
                if taker is not None:
                    taker["remaining_lots"] = max(0, taker["remaining_lots"] - d["qty_lots"])
                self.last_price[symbol] = d["price_ticks"]
                trade = {
                    k: d[k]
                    for k in (
                        "symbol", "trade_id", "price_ticks", "qty_lots", "taker_side",
                        "timestamp_ns", "position",
                    )
                }  # fmt: skip
                self.last_trade[symbol] = trade
                out.append(Message(f"trades.{symbol}", "trade", trade, {"last": _dumps(trade)}))
                tops[symbol] = None
                for interval, width in CANDLE_INTERVALS.items():
                    self._candle(symbol, interval, width, d)
                    candles[(symbol, interval)] = None
                self._private(out, d["maker_account_id"], kind, d, d["maker_order_id"])
                if d["taker_account_id"] != d["maker_account_id"]:
                    self._private(out, d["taker_account_id"], kind, d, d["taker_order_id"])
                else:
                    self._state_of(out[-1], d["taker_order_id"])
                continue
            account = d.get("account_id")
            if kind == "OrderAccepted":
                self._open(
                    {
                        "order_id": d["order_id"],
                        "account_id": account,
                        "symbol": d["symbol"],
                        "client_order_id": d["client_order_id"],
                        "side": d["side"],
                        "order_type": d["order_type"],
                        "time_in_force": d["time_in_force"],
                        "price_ticks": d["price_ticks"],
                        "remaining_lots": d["qty_lots"],
                        "resting": False,
                    }
                )
                transient.append(d["order_id"])
            elif kind == "OrderRested":
                order = self.orders.get(d["order_id"])
                if order is not None:
                    order["resting"] = True
                    order["remaining_lots"] = d["qty_lots"]
                self._level(changed, d["symbol"], d["side"], d["price_ticks"], d["qty_lots"], 1)
                tops[d["symbol"]] = None
            elif kind == "OrderCanceled":
                order = self._close(d["order_id"])
                if order is not None and order["resting"]:
                    self._level(
                        changed, order["symbol"], order["side"], order["price_ticks"],
                        -order["remaining_lots"], -1,
                    )  # fmt: skip
                    tops[order["symbol"]] = None
            elif kind == "OrderAmended":
                order = self.orders.get(d["order_id"])
                if order is not None:
                    symbol, side = order["symbol"], order["side"]
                    self._level(changed, symbol, side, d["old_price_ticks"], -d["old_qty_lots"], -1)
                    self._level(changed, symbol, side, d["new_price_ticks"], d["new_qty_lots"], 1)
                    order["price_ticks"] = d["new_price_ticks"]
                    order["remaining_lots"] = d["new_qty_lots"]
                    tops[symbol] = None
            elif kind == "InstrumentListed":
                self._add_symbol(d["symbol"])
                out.append(Message("symbols", "listed", {"symbol": d["symbol"]}))
                continue
            if not account:  # None, or an AlertRejected of no known alert (account "")
                continue
            if kind.startswith("Alert"):
                out.append(self._alert(kind, account, d))
            else:
                self._private(out, account, kind, d, d.get("order_id"))
        for order_id in transient:
            order = self.orders.get(order_id)
            if order is not None and not order["resting"]:
                self._close(order_id)
                last = self._last.get(f"orders.{order['account_id']}")
                if last is not None:
                    last.state[order_id] = None
        for symbol, (bid_changes, ask_changes) in changed.items():
            out.append(self._delta(symbol, bid_changes, ask_changes))
        for symbol in tops:
            ticker = self.ticker(symbol)
            out.append(Message(f"ticker.{symbol}", "ticker", ticker, {"ticker": _dumps(ticker)}))
        for symbol, interval in candles:
            candle = self.candles[(symbol, interval)]
            name = f"candles.{symbol}.{interval}"
            out.append(Message(name, "candle", candle, {"candle": _dumps(candle)}))
        return out

    def _alert(self, kind: str, account: str, d: dict[str, Any]) -> Message:
        """An alert event for its account's channel; the channel's snapshot lists the open
        alerts (created, not yet triggered or canceled)."""
        message = Message(f"alerts.{account}", kind, d)
        alert_id = d.get("alert_id")
        if not isinstance(alert_id, str):
            return message
        if kind == "AlertCreated":
            message.state[alert_id] = self._arm({k: d.get(k) for k in _ALERT_FIELDS})
        elif kind == "AlertTriggered" or kind == "AlertCanceled":
            self._disarm(account, alert_id)
            message.state[alert_id] = None
        return message

    def _private(
        self, out: list[Message], account: str, kind: str, d: dict[str, Any], order_id: Any
    ) -> None:
        message = Message(f"orders.{account}", kind, d)
        self._state_of(message, order_id)
        out.append(message)
        self._last[message.channel] = message

    def _state_of(self, message: Message, order_id: Any) -> None:
        """The account's open-orders snapshot follows the order's life."""
        if not isinstance(order_id, str):
            return
        order = self.orders.get(order_id)
        message.state[order_id] = None if order is None else _dumps(order)

    def _level(
        self,
        changed: dict[str, tuple[dict[int, Level | None], dict[int, Level | None]]],
        symbol: str,
        side: str,
        price: int,
        lots: int,
        count: int,
    ) -> None:
        bids, asks = self._book(symbol)
        levels = bids if side == "buy" else asks
        level = levels.get(price)
        if level is None:
            level = levels[price] = [0, 0]
        level[0] += lots
        level[1] += count
        bid_changes, ask_changes = changed.setdefault(symbol, ({}, {}))
        changes = bid_changes if side == "buy" else ask_changes
        if level[1] <= 0 or level[0] <= 0:
            del levels[price]
            changes[price] = None
        else:
            changes[price] = level

    def _delta(
        self,
        symbol: str,
        bid_changes: dict[int, Level | None],
        ask_changes: dict[int, Level | None],
    ) -> Message:
        state: dict[str, str | None] = {}
        data: dict[str, list[list[int]]] = {"bids": [], "asks": []}
        for prefix, key, changes in (("b", "bids", bid_changes), ("a", "asks", ask_changes)):
            rows = data[key]
            for price in sorted(changes, reverse=key == "bids"):
                level = changes[price]
                if level is None:
                    rows.append([price, 0, 0])
                    state[f"{prefix}:{price}"] = None
                else:
                    rows.append([price, level[0], level[1]])
                    state[f"{prefix}:{price}"] = f"{level[0]}:{level[1]}"
        return Message(f"book.{symbol}", "delta", data, state)

    def _candle(self, symbol: str, interval: str, width: int, d: dict[str, Any]) -> None:
        bucket = d["timestamp_ns"] - d["timestamp_ns"] % width
        price, qty = d["price_ticks"], d["qty_lots"]
        candle = self.candles.get((symbol, interval))
        if candle is None or candle["bucket_ns"] != bucket:
            self.candles[(symbol, interval)] = {
                "symbol": symbol, "interval": interval, "bucket_ns": bucket,
                "open_ticks": price, "high_ticks": price, "low_ticks": price,
                "close_ticks": price, "volume_lots": qty, "trade_count": 1,
                "first_trade_id": d["trade_id"], "last_trade_id": d["trade_id"],
            }  # fmt: skip
            return
        candle["high_ticks"] = max(candle["high_ticks"], price)
        candle["low_ticks"] = min(candle["low_ticks"], price)
        candle["close_ticks"] = price
        candle["volume_lots"] += qty
        candle["trade_count"] += 1
        candle["last_trade_id"] = d["trade_id"]


_WANTED = frozenset(
    {
        "TradeExecuted", "OrderAccepted", "OrderRejected", "OrderRested", "OrderCanceled",
        "OrderAmended", "InstrumentListed",
    }
)  # fmt: skip


# -- the publisher ---------------------------------------------------------------------------------


@dataclass
class PublisherStats:
    batches: int = 0
    published: int = 0  # messages written to Redis
    dropped: int = 0  # messages lost: Redis down or the queue full
    resyncs: int = 0  # whole-snapshot rewrites after a loss
    last_error: str = ""


class LivePublisher:
    """The core's commit hook: committed batches out to Redis, never blocking a commit."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "tradecore:",
        *,
        max_pending: int = 100_000,
        max_round: int = 5_000,
        retry_s: float = 0.5,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_pending = max_pending  # messages waiting for Redis
        self.max_round = max_round
        self.retry_s = retry_s
        self.state = LiveState()
        self.stats = PublisherStats()
        self.seqs: dict[str, int] = {}
        self._stored: dict[str, int] = {}  # the seqs a previous publisher left in Redis
        self._raw: deque[list[RecordedEvent]] = deque()
        self._pending: deque[tuple[str, int, Message]] = deque()  # (encoded, seq, message)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seeded = False
        self._resync = True
        self._round_script = redis.register_script(_ROUND)

    def key(self, name: str) -> str:
        return f"{self.prefix}live:{name}"

    # -- the hook ---------------------------------------------------------------------------------

    def on_commit(self, batch: list[RecordedEvent]) -> None:
        """Called by the core right after COMMIT: O(1), no I/O."""
        if not self._seeded:
            return
        self._raw.append(batch)
        self._wakeup.set()

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self, exchange: Any, alerts: Iterable[Any] = ()) -> None:
        """Seed from the recovered core (call right after `core.start`, before commands);
        `alerts`: the core's alerts (`core.alerts.alerts.values()`)."""
        state = LiveState()
        state.seed(exchange, alerts)
        await self.start_seeded(state)

    async def start_seeded(self, state: LiveState) -> None:
        """Start from a state seeded elsewhere (infra.publisher_process sends one over)."""
        self.state = state
        self._seeded = True
        try:
            stored = await self.redis.hgetall(self.key("seq"))
            self._stored = {_text(k): int(v) for k, v in stored.items()}
        except RedisError as exc:
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self._resync = True
        self._task = asyncio.create_task(self._run(), name="tradecore-live-publisher")

    async def stop(self) -> None:
        """Publish what is queued (a few seconds at most), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._wakeup.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), timeout=3.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _drained(self) -> None:
        while self._raw or self._pending:
            await asyncio.sleep(0.01)

    def health(self) -> ComponentHealth:
        stats = self.stats
        detail = (
            f"{stats.published:,} messages published, {stats.dropped:,} dropped, "
            f"{len(self._pending):,} queued"
        )
        running = self._task is not None and not self._task.done()
        if not running:
            return ComponentHealth(name="live-publisher", kind="component", state="down",
                                   detail=detail)  # fmt: skip
        if stats.last_error:
            return ComponentHealth(
                name="live-publisher", kind="component", state="degraded",
                detail=f"{detail}; market data is being dropped: {stats.last_error}",
            )  # fmt: skip
        return ComponentHealth(name="live-publisher", kind="component", state="up", detail=detail)

    # -- the task ---------------------------------------------------------------------------------

    def _next_seq(self, channel: str) -> int:
        seq = self.seqs.get(channel)
        if seq is None:
            stored = self._stored.get(channel)
            # a restarted publisher skips one: its predecessor's last messages may be lost
            seq = 0 if stored is None else stored + 1
        seq += 1
        self.seqs[channel] = seq
        return seq

    def _encode(self, message: Message) -> tuple[str, int, Message]:
        seq = self._next_seq(message.channel)
        text = _dumps(
            {"channel": message.channel, "seq": seq, "type": message.type, "data": message.data}
        )
        return text, seq, message

    def _derive(self) -> None:
        raw, fold, pending = self._raw, self.state.fold, self._pending
        while raw:
            self.stats.batches += 1
            for message in fold(raw.popleft()):
                pending.append(self._encode(message))
        overflow = len(pending) - self.max_pending
        if overflow > 0:
            for _ in range(overflow):
                pending.popleft()
            self._lost(overflow, "the publish queue overflowed (Redis too slow)")

    def _lost(self, count: int, why: str) -> None:
        self.stats.dropped += count
        self.stats.last_error = why
        self._resync = True

    async def _run(self) -> None:
        while True:
            if not self._raw and not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            self._derive()
            try:
                if self._resync:
                    await self._write_full_state()
                    self._resync = False
                    self.stats.resyncs += 1
                await self._write_round()
                self.stats.last_error = ""
            except RedisError as exc:
                count = len(self._pending)
                self._pending.clear()
                self._lost(count, f"Redis: {type(exc).__name__}: {exc}")
                await asyncio.sleep(self.retry_s)

    async def _write_full_state(self) -> None:
        """Rewrite every snapshot from memory, each with its channel's current seq."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key("symbols"))
        if self.state.symbols:
            pipe.sadd(self.key("symbols"), *sorted(self.state.symbols))
        stale = [k async for k in self.redis.scan_iter(match=self.key("state:orders.*"))]
        stale += [k async for k in self.redis.scan_iter(match=self.key("state:alerts.*"))]
        if stale:
            pipe.delete(*stale)
        seqs: dict[str, int] = {}
        for message in self.state.full_state():
            state_key = self.key(f"state:{message.channel}")
            pipe.delete(state_key)
            fields = {k: v for k, v in message.state.items() if v is not None}
            if fields:
                pipe.hset(state_key, mapping=fields)  # type: ignore[arg-type]
            seqs[message.channel] = self._next_seq(message.channel)
        if seqs:
            pipe.hset(self.key("seq"), mapping=seqs)  # type: ignore[arg-type]
        await pipe.execute()

    async def _write_round(self) -> None:
        pending = self._pending
        while pending:
            messages: list[list[Any]] = []
            seqs: dict[str, str] = {}
            count = 0
            symbols: list[str] = []
            for text, seq, message in pending:
                if count >= self.max_round:
                    break
                count += 1
                if message.channel == "symbols":
                    symbols.append(message.data["symbol"])
                    continue
                sets: list[str] = []
                dels: list[str] = []
                for name, value in message.state.items():
                    if value is None:
                        dels.append(name)
                    else:
                        sets += (name, value)
                messages.append(
                    [message.channel, text, 1 if message.reset_state else 0, sets, dels]
                )
                seqs[message.channel] = str(seq)
            flat_seqs = [x for pair in seqs.items() for x in pair]
            round_ = {"p": self.key(""), "m": messages, "s": symbols, "q": flat_seqs}
            await self._round_script(args=[jsontext.dumps_bytes(round_)])
            for _ in range(count):
                pending.popleft()
            self.stats.published += count
            self._derive()  # batches committed meanwhile go out in the next round


# One round of messages as one script: atomic, like the MULTI/EXEC it replaces, and cheap on
# this side. The round travels as one JSON argument (cjson decodes it in Redis): packing
# thousands of separate arguments, and the QUEUED reply to each command of a MULTI, cost more
# than folding the events. The keys are built in the script from the prefix, so this assumes
# the single Redis the fan-out is designed for (not a cluster). ARGV[1]: {"p": key prefix,
# "m": [[channel, text, reset 0/1, [field, value, ...], [field to delete, ...]], ...],
# "s": [listed symbols], "q": [channel, last seq, ...]}; every value a string (cjson would
# turn numbers into floats).
_ROUND = """
local function call(command, key, values)
  -- in chunks: Lua's unpack is bounded
  for from = 1, #values, 1000 do
    redis.call(command, key, unpack(values, from, math.min(from + 999, #values)))
  end
end
local round = cjson.decode(ARGV[1])
local prefix = round['p']
for _, m in ipairs(round['m']) do
  local state = prefix .. 'state:' .. m[1]
  if m[3] == 1 then redis.call('DEL', state) end
  call('HSET', state, m[4])
  call('HDEL', state, m[5])
  redis.call('PUBLISH', prefix .. m[1], m[2])
end
call('SADD', prefix .. 'symbols', round['s'])
call('HSET', prefix .. 'seq', round['q'])
return 1
"""


# -- the feed --------------------------------------------------------------------------------------


def snapshot_data(channel: Channel, state: dict[str, str]) -> dict[str, Any]:
    """A channel's snapshot in its message shape, from its Redis state hash."""
    if channel.kind == "book":
        bids: list[list[int]] = []
        asks: list[list[int]] = []
        for name, value in state.items():
            side, _, price = name.partition(":")
            lots, _, count = value.partition(":")
            (bids if side == "b" else asks).append([int(price), int(lots), int(count)])
        bids.sort(reverse=True)
        asks.sort()
        return {"bids": bids, "asks": asks}
    if channel.kind == "ticker":
        ticker: dict[str, Any] = json.loads(state["ticker"]) if "ticker" in state else {}
        return ticker
    if channel.kind == "candles":
        candle: dict[str, Any] = json.loads(state["candle"]) if "candle" in state else {}
        return candle
    if channel.kind == "trades":
        return {"last": json.loads(state["last"]) if "last" in state else None}
    if channel.kind == "orders":
        orders = [json.loads(v) for _, v in sorted(state.items())]
        return {"orders": orders}
    return {"alerts": [json.loads(v) for _, v in sorted(state.items())]}


UNLISTED_RETRIES, UNLISTED_RETRY_S = 20, 0.05  # how long a just-listed symbol may lag


class RedisLiveFeed:
    """One pub/sub connection per gateway process, shared by its local listeners."""

    def __init__(self, redis: Redis, prefix: str = "tradecore:", *, retry_s: float = 0.5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retry_s = retry_s
        self._listeners: dict[str, set[Listener]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._read_snapshots = Coalescer(self._snapshot_batch)
        self.received = 0
        self.error = ""

    def key(self, name: str) -> str:
        return f"{self.prefix}live:{name}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tradecore-live-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    def health(self) -> ComponentHealth:
        channels = len(self._listeners)
        detail = f"{channels} channels listened to, {self.received:,} messages received"
        if self._task is None or self._task.done():
            return ComponentHealth(name="live-feed", kind="component", state="down", detail=detail)
        if self.error:
            return ComponentHealth(
                name="live-feed", kind="component", state="degraded",
                detail=f"{detail}; {self.error}",
            )  # fmt: skip
        return ComponentHealth(name="live-feed", kind="component", state="up", detail=detail)

    # -- listening --------------------------------------------------------------------------------

    async def listen(self, channel: str, listener: Listener, timeout: float = 5.0) -> None:
        """Deliver `channel`'s messages to `listener`; returns once Redis has subscribed."""
        async with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                listeners = self._listeners[channel] = set()
                self._confirmed[channel] = asyncio.get_running_loop().create_future()
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.subscribe(self.key(channel))
            listeners.add(listener)
            confirmed = self._confirmed[channel]
        await asyncio.wait_for(asyncio.shield(confirmed), timeout)

    async def unlisten(self, channel: str, listener: Listener) -> None:
        async with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                return
            listeners.discard(listener)
            if listeners:
                return
            del self._listeners[channel]
            self._confirmed.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(self.key(channel))

    async def snapshot(self, channel: Channel) -> ChannelSnapshot | None:
        """The channel's current snapshot and seq (atomically); None for an unknown symbol.

        Reads asked for together share one round trip (`Coalescer`: each answer comes from a
        read that started after it was asked for, so a subscriber's snapshot never predates
        its subscription): a storm of subscribers costs a few pipelines, not one each.
        A symbol listed a moment ago may not be published yet (the publisher runs after
        COMMIT, on its own task), so an unknown symbol is asked about again for a second."""
        for attempt in range(UNLISTED_RETRIES + 1):
            try:
                found = await self._read_snapshots(channel)
            except (RedisError, OSError) as exc:
                raise ServiceUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None
            if found is not None:
                return found
            if attempt < UNLISTED_RETRIES:
                await asyncio.sleep(UNLISTED_RETRY_S)
        return None

    async def _snapshot_batch(self, channels: Sequence[Channel]) -> list[ChannelSnapshot | None]:
        """One MULTI/EXEC reading each distinct channel's state, seq and listing once."""
        distinct = list({c.name: c for c in channels}.values())
        pipe = self.redis.pipeline(transaction=True)
        for channel in distinct:
            pipe.hgetall(self.key(f"state:{channel.name}"))
            pipe.hget(self.key("seq"), channel.name)
            pipe.sismember(self.key("symbols"), channel.symbol or "")
        replies = await pipe.execute()
        read: dict[str, ChannelSnapshot | None] = {}
        for i, channel in enumerate(distinct):
            state_reply, seq_reply, listed = replies[3 * i : 3 * i + 3]
            if channel.symbol is not None and not listed:
                read[channel.name] = None
                continue
            state = {k.decode(): v.decode() for k, v in state_reply.items()}
            seq = 0 if seq_reply is None else int(seq_reply)
            read[channel.name] = ChannelSnapshot(channel.name, seq, snapshot_data(channel, state))
        return [read[c.name] for c in channels]

    # -- the LiveFeed shape for GraphQL ---------------------------------------------------------

    async def subscribe(
        self, channel: str, max_queue: int = 1_000
    ) -> AsyncIterator[dict[str, Any]]:
        """The channel's snapshot, then its messages; after a loss, a fresh snapshot."""
        parsed = parse_channel(channel)
        if parsed is None:
            raise ValueError(f"unknown channel {channel!r}")
        queue = _QueueListener(max_queue)
        await self.listen(channel, queue)
        try:
            while True:
                snapshot = await self.snapshot(parsed)
                if snapshot is None:
                    raise ValueError(f"unknown symbol in {channel!r}")
                yield snapshot.message()
                last = snapshot.seq
                while True:
                    message = await queue.get()
                    if message is None:
                        break  # lost: snapshot again
                    if message["seq"] <= last:
                        continue
                    last = message["seq"]
                    yield message
        finally:
            await self.unlisten(channel, queue)

    # -- the reader -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                async with self._lock:
                    self._pubsub = pubsub
                    names = [self.key(c) for c in self._listeners]
                    if names:
                        await pubsub.subscribe(*names)
                if self.error:
                    self.error = ""
                    self._reset_all()
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                self.error = f"Redis: {type(exc).__name__}: {exc}"
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(self.retry_s)

    def _reset_all(self) -> None:
        for channel, listeners in list(self._listeners.items()):
            for listener in list(listeners):
                listener.reset(channel)

    async def _read(self, pubsub: PubSub) -> None:
        skip = len(self.key(""))
        loads = json.loads
        while True:
            if not pubsub.subscribed:
                await asyncio.sleep(0.02)
                continue
            item = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if item is None:
                continue
            kind = item["type"]
            channel = item["channel"].decode()[skip:]
            if kind == "message":
                self.received += 1
                listeners = self._listeners.get(channel)
                if not listeners:
                    continue
                raw = item["data"].decode()
                message = loads(raw)
                for listener in list(listeners):
                    listener.deliver(channel, raw, message)
            elif kind == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)


class _QueueListener:
    """A bounded queue of messages; None marks a loss (overflow or a Redis reconnect)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: deque[dict[str, Any] | None] = deque()
        self.ready = asyncio.Event()

    def deliver(self, channel: str, raw: str, message: dict[str, Any]) -> None:
        if len(self.items) >= self.limit:
            self.items.clear()
            self.items.append(None)
        else:
            self.items.append(message)
        self.ready.set()

    def reset(self, channel: str) -> None:
        self.items.clear()
        self.items.append(None)
        self.ready.set()

    async def get(self) -> dict[str, Any] | None:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class HasHealth(Protocol):
    def health(self) -> ComponentHealth: ...


class LiveHealth:
    """The gateway's health plus the live publisher's and feed's."""

    def __init__(self, inner: HealthProbe, *parts: HasHealth) -> None:
        self.inner = inner
        self.parts = parts

    async def check(self) -> list[ComponentHealth]:
        return [*await self.inner.check(), *(part.health() for part in self.parts)]
