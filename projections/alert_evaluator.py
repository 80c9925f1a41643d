"""The alert evaluator: reads trades and alerts from the log and fires the alerts they meet.

It decides nothing durable itself: a firing is a `TriggerAlert` command submitted through the
core, and the core's alert decider (`domain.alerts`) records `AlertTriggered` once per alert,
whatever the evaluator sends again. Its state is folded from the log on every start:

1. every alert event (a partial index keeps this cheap) tells which alerts are still open;
2. the log is read from the creation of the oldest open alert (trades and alert events only),
   so a crossing knows the price it starts from and a `moves_pct` window sees every trade
   since its alert was created;
3. then it follows the log as it grows.

A restart therefore never re-fires an alert that triggered (step 1 knows it is closed), and
one whose `TriggerAlert` was in flight when the evaluator stopped is refused as a duplicate by
the decider. Rebuilding the read models does not touch it. `AlertWatch` is the pure part
(no I/O); `AlertEvaluator` adds the log reads and the submissions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from domain.alerts import crossed, moved
from domain.commands import Command, TriggerAlert
from domain.events import (
    AlertCanceled,
    AlertCondition,
    AlertCreated,
    AlertId,
    AlertTriggered,
    TradeExecuted,
    from_dict,
)
from projections.base import Envelope, Tx

log = logging.getLogger(__name__)

NS = 1_000_000_000
ALERT_EVENTS = ("AlertCreated", "AlertCanceled", "AlertTriggered")
READ_ALERT_EVENTS = (
    "SELECT notification_id, event_id::text, state FROM events "
    "WHERE event_type LIKE 'Alert%' AND event_type = ANY($1::text[]) ORDER BY notification_id"
)
READ_WATCHED = (
    "SELECT notification_id, event_id::text, state, event_type FROM events "
    "WHERE notification_id > $1 "
    "AND (event_type = 'TradeExecuted' OR event_type = ANY($3::text[])) "
    "ORDER BY notification_id LIMIT $2"
)
HEAD = "SELECT coalesce(max(notification_id), 0) FROM events"


@dataclass(frozen=True, slots=True)
class Firing:
    """An alert a trade met: what `TriggerAlert` carries."""

    alert_id: str
    trade_id: int
    trade_position: int
    price_ticks: int
    traded_at_ns: int
    reference_price_ticks: int
    reference_at_ns: int

    def command(self, command_id: str, timestamp_ns: int) -> TriggerAlert:
        return TriggerAlert(
            command_id=command_id,
            correlation_id=command_id,
            timestamp_ns=timestamp_ns,
            alert_id=AlertId(self.alert_id),
            trade_id=self.trade_id,
            trade_position=self.trade_position,
            price_ticks=self.price_ticks,
            traded_at_ns=self.traded_at_ns,
            reference_price_ticks=self.reference_price_ticks,
            reference_at_ns=self.reference_at_ns,
        )


@dataclass(slots=True)
class _Watch:
    alert_id: str
    symbol: str
    condition: AlertCondition
    level_ticks: int
    pct_bps: int
    window_ns: int
    before: int  # crossings: the price before the next trade
    before_at: int
    # moves_pct: (time, price) of the trades in the window, as monotonic queues whose heads
    # are the lowest and the highest price (sliding-window minimum and maximum).
    lows: deque[tuple[int, int]] = field(default_factory=deque)
    highs: deque[tuple[int, int]] = field(default_factory=deque)

    def see(self, at: int, price: int) -> tuple[int, int] | None:
        """Fold one trade; the (price, time) it crossed or moved from when it fires."""
        if self.condition is not AlertCondition.MOVES_PCT:
            before, before_at = self.before, self.before_at
            self.before, self.before_at = price, at
            if crossed(self.condition, self.level_ticks, before, price):
                return before, before_at
            return None
        oldest = at - self.window_ns
        for queue in (self.lows, self.highs):
            while queue and queue[0][0] < oldest:
                queue.popleft()
        fired = None
        for queue in (self.lows, self.highs):
            if queue:
                then, reference = queue[0]
                if then <= at and moved(self.pct_bps, reference, price):
                    fired = reference, then
                    break
        while self.lows and self.lows[-1][1] >= price:
            self.lows.pop()
        self.lows.append((at, price))
        while self.highs and self.highs[-1][1] <= price:
            self.highs.pop()
        self.highs.append((at, price))
        return fired


class AlertWatch:
    """Which open alerts each trade fires, folded from the log in order (no I/O)."""

    def __init__(self, closed: Iterable[str] = ()) -> None:
        self.closed: set[str] = set(closed)  # triggered or canceled (or fired by us)
        self.by_symbol: dict[str, dict[str, _Watch]] = {}
        self.position = 0

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self.by_symbol.values())

    def observe(self, envelope: Envelope) -> list[Firing]:
        self.position = max(self.position, envelope.position)
        event = envelope.event
        if isinstance(event, TradeExecuted):
            watches = self.by_symbol.get(event.symbol)
            if not watches:
                return []
            fired = []
            at, price = event.timestamp_ns, event.price_ticks
            for watch in list(watches.values()):
                reference = watch.see(at, price)
                if reference is not None:
                    ref_price, ref_at = reference
                    fired.append(
                        Firing(
                            watch.alert_id,
                            event.trade_id,
                            envelope.position,
                            price,
                            at,
                            ref_price,
                            ref_at,
                        )
                    )
                    self._close(watch.alert_id, watch.symbol)
            return fired
        if isinstance(event, AlertCreated):
            if event.alert_id not in self.closed:
                self.by_symbol.setdefault(event.symbol, {})[event.alert_id] = _Watch(
                    alert_id=event.alert_id,
                    symbol=event.symbol,
                    condition=event.condition,
                    level_ticks=event.level_ticks,
                    pct_bps=event.pct_bps,
                    window_ns=event.window_s * NS,
                    before=event.last_price_ticks,
                    before_at=event.timestamp_ns,
                )
        elif isinstance(event, AlertCanceled | AlertTriggered):
            self._close(event.alert_id, event.symbol)
        return []

    def _close(self, alert_id: str, symbol: str) -> None:
        self.closed.add(alert_id)
        watches = self.by_symbol.get(symbol)
        if watches is not None:
            watches.pop(alert_id, None)
            if not watches:
                del self.by_symbol[symbol]


def open_alerts(envelopes: Iterable[Envelope]) -> tuple[set[str], int | None]:
    """From the alert events alone: the closed alerts, and the position of the oldest alert
    still open (None when none is)."""
    created: dict[str, int] = {}
    closed: set[str] = set()
    for envelope in envelopes:
        event = envelope.event
        if isinstance(event, AlertCreated):
            created[event.alert_id] = envelope.position
        elif isinstance(event, AlertCanceled | AlertTriggered):
            closed.add(event.alert_id)
    still_open = [p for a, p in created.items() if a not in closed]
    return closed, min(still_open, default=None)


Submit = Callable[[Command], Awaitable[Any]]


@dataclass
class EvaluatorStats:
    fired: int = 0  # TriggerAlert commands submitted
    triggered: int = 0  # of which the core recorded an AlertTriggered
    position: int = 0


class AlertEvaluator:
    """Folds the log into an `AlertWatch` and submits what it fires, then follows the log.

    ``db`` reads the event store (an asyncpg pool fits `Tx`); ``submit`` is the core's."""

    def __init__(
        self,
        db: Tx,
        submit: Submit,
        clock_ns: Callable[[], int],
        *,
        batch_size: int = 5_000,
        poll: float = 0.2,
        new_id: Callable[[], str] = lambda: f"alert-eval-{uuid.uuid4().hex}",
    ) -> None:
        self.db = db
        self.submit = submit
        self.clock_ns = clock_ns
        self.batch_size = batch_size
        self.poll = poll
        self.new_id = new_id
        self.stats = EvaluatorStats()
        self.watch = AlertWatch()

    async def start(self) -> None:
        """Fold the state from the log (step 1 and the start of step 2, see the module)."""
        rows = await self.db.fetch(READ_ALERT_EVENTS, list(ALERT_EVENTS))
        closed, oldest = open_alerts(_envelopes(rows))
        self.watch = AlertWatch(closed)
        if oldest is None:
            self.watch.position = int(await self.db.fetchval(HEAD))
        else:
            self.watch.position = oldest - 1

    async def step(self) -> int:
        """Read and evaluate one page of the log; returns how many events it held."""
        rows = await self.db.fetch(
            READ_WATCHED, self.watch.position, self.batch_size, list(ALERT_EVENTS)
        )
        watch = self.watch
        for row in rows:
            if not watch.by_symbol and row[3] == "TradeExecuted":
                watch.position = int(row[0])  # nothing to watch: no need to decode the trade
                continue
            for firing in watch.observe(_envelope(row)):
                await self._fire(firing)
        self.stats.position = watch.position
        return len(rows)

    async def catch_up(self) -> None:
        """Evaluate the log up to its current head."""
        while await self.step() == self.batch_size:
            pass

    async def run(self) -> None:
        """Start, then follow the log until cancelled."""
        await self.start()
        while True:
            if await self.step() < self.batch_size:
                await asyncio.sleep(self.poll)

    async def _fire(self, firing: Firing) -> None:
        result = await self.submit(firing.command(self.new_id(), self.clock_ns()))
        self.stats.fired += 1
        events = getattr(result, "events", ())
        if any(isinstance(e, AlertTriggered) for e in events):
            self.stats.triggered += 1
        elif not getattr(result, "duplicate", False):
            log.warning("alert %s was not triggered: %s", firing.alert_id, events)


def _envelope(row: Any) -> Envelope:
    return Envelope(int(row[0]), str(row[1]), from_dict(json.loads(bytes(row[2]))))


def _envelopes(rows: Iterable[Any]) -> Iterable[Envelope]:
    return map(_envelope, rows)
