"""The price-alert decider and the evaluator's pure part: conditions, once only, rejections."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.alerts import MAX_ACTIVE_PER_ACCOUNT, Alerts, AlertStatus, KnownMarket
from domain.commands import CancelAlert, CreateAlert, TriggerAlert
from domain.events import (
    AlertCanceled,
    AlertCondition,
    AlertCreated,
    AlertId,
    AlertRejected,
    AlertRejectReason,
    AlertTriggered,
    Event,
    TradeExecuted,
    from_dict,
    to_dict,
)
from domain.exchange import Exchange
from domain.values import AccountId, OrderId, Side, Symbol
from projections.alert_evaluator import AlertWatch, open_alerts
from projections.base import Envelope
from tests.unit.domain import factories as f

SECOND = 1_000_000_000


def market(last: int = 10_000) -> KnownMarket:
    """alice and bob; ABC-USD with tick 0.01, last price 100.00."""
    return KnownMarket([f.ALICE, f.BOB], {f.SYMBOL: Decimal("0.01")}, lambda _: last)


def create(alert_id: str = "al-1", account: str = f.ALICE, **fields: Any) -> CreateAlert:
    fields.setdefault("condition", AlertCondition.CROSSES_ABOVE)
    if fields["condition"] is not AlertCondition.MOVES_PCT:
        fields.setdefault("level", Decimal("101.00"))
    return CreateAlert(
        **f.meta(),
        account_id=AccountId(account),
        alert_id=AlertId(alert_id),
        symbol=fields.pop("symbol", f.SYMBOL),
        **fields,
    )


def cancel(alert_id: str = "al-1", account: str = f.ALICE) -> CancelAlert:
    return CancelAlert(**f.meta(), account_id=AccountId(account), alert_id=AlertId(alert_id))


def trigger(
    alert_id: str = "al-1",
    price: int = 10_100,
    reference: int = 10_000,
    traded_at: int = 10 * SECOND,
    reference_at: int = 5 * SECOND,
) -> TriggerAlert:
    return TriggerAlert(
        **f.meta(),
        alert_id=AlertId(alert_id),
        trade_id=7,
        trade_position=42,
        price_ticks=price,
        traded_at_ns=traded_at,
        reference_price_ticks=reference,
        reference_at_ns=reference_at,
    )


def rejection(events: tuple[Event, ...]) -> AlertRejectReason:
    (event,) = events
    assert isinstance(event, AlertRejected)
    return event.reason


# --- the decider ------------------------------------------------------------------------------


def test_a_crossing_alert_is_created_in_ticks_with_the_price_it_starts_from() -> None:
    alerts = Alerts()
    outcome = alerts.handle(create(level=Decimal("101.50")), market(last=10_020))
    (event,) = outcome.events
    assert isinstance(event, AlertCreated)
    assert (event.level_ticks, event.pct_bps, event.window_s) == (10_150, 0, 0)
    assert event.last_price_ticks == 10_020
    assert alerts.alerts["al-1"].status is AlertStatus.ACTIVE


def test_a_moves_pct_alert_keeps_its_percentage_in_hundredths_and_its_window() -> None:
    alerts = Alerts()
    cmd = create(condition=AlertCondition.MOVES_PCT, pct=Decimal("2.5"), window_s=60)
    (event,) = alerts.handle(cmd, market()).events
    assert isinstance(event, AlertCreated)
    assert (event.level_ticks, event.pct_bps, event.window_s) == (0, 250, 60)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (create(account="mallory"), AlertRejectReason.UNKNOWN_ACCOUNT),
        (create(symbol=Symbol("NOPE-USD")), AlertRejectReason.UNKNOWN_SYMBOL),
        (create(level=Decimal("100.005")), AlertRejectReason.INVALID_LEVEL),
        (create(level=Decimal("-1")), AlertRejectReason.INVALID_LEVEL),
        (create(level=None), AlertRejectReason.INVALID_LEVEL),
        (create(pct=Decimal("1")), AlertRejectReason.INVALID_CONDITION),
        (
            create(condition=AlertCondition.MOVES_PCT, pct=Decimal("0.001"), window_s=60),
            AlertRejectReason.INVALID_PCT,
        ),
        (
            create(condition=AlertCondition.MOVES_PCT, pct=Decimal("0"), window_s=60),
            AlertRejectReason.INVALID_PCT,
        ),
        (
            create(condition=AlertCondition.MOVES_PCT, pct=Decimal("5")),
            AlertRejectReason.INVALID_WINDOW,
        ),
        (
            create(condition=AlertCondition.MOVES_PCT, pct=Decimal("5"), window_s=0),
            AlertRejectReason.INVALID_WINDOW,
        ),
    ],
)
def test_an_invalid_alert_is_rejected_with_its_reason_and_changes_nothing(
    command: CreateAlert, reason: AlertRejectReason
) -> None:
    alerts = Alerts()
    before = alerts.state_hash()
    assert rejection(alerts.handle(command, market()).events) is reason
    assert alerts.state_hash() == before


def test_an_alert_id_is_never_reused_even_after_the_alert_closed() -> None:
    alerts = Alerts()
    alerts.handle(create(), market())
    alerts.handle(cancel(), market())
    assert rejection(alerts.handle(create(), market()).events) is (
        AlertRejectReason.DUPLICATE_ALERT_ID
    )


def test_only_the_owner_cancels_and_a_closed_alert_cannot_be_canceled() -> None:
    alerts = Alerts()
    alerts.handle(create(), market())
    assert rejection(alerts.handle(cancel(account=f.BOB), market()).events) is (
        AlertRejectReason.NOT_ALERT_OWNER
    )
    assert rejection(alerts.handle(cancel("al-9"), market()).events) is (
        AlertRejectReason.UNKNOWN_ALERT
    )
    (canceled,) = alerts.handle(cancel(), market()).events
    assert isinstance(canceled, AlertCanceled)
    assert rejection(alerts.handle(cancel(), market()).events) is (
        AlertRejectReason.ALREADY_CANCELED
    )
    alerts.handle(create("al-2"), market())
    alerts.handle(trigger("al-2"), market())
    assert rejection(alerts.handle(cancel("al-2"), market()).events) is (
        AlertRejectReason.ALREADY_TRIGGERED
    )


def test_an_alert_triggers_once_and_a_second_trigger_writes_nothing() -> None:
    alerts = Alerts()
    alerts.handle(create(), market())
    first = alerts.handle(trigger(), market())
    (event,) = first.events
    assert isinstance(event, AlertTriggered)
    assert (event.account_id, event.symbol, event.price_ticks) == (f.ALICE, f.SYMBOL, 10_100)
    before = alerts.state_hash()
    again = alerts.handle(trigger(price=10_200), market())
    assert again.duplicate and again.events == ()
    assert alerts.state_hash() == before


def test_a_canceled_alert_never_triggers() -> None:
    alerts = Alerts()
    alerts.handle(create(), market())
    alerts.handle(cancel(), market())
    outcome = alerts.handle(trigger(), market())
    assert outcome.duplicate and outcome.events == ()
    assert alerts.alerts["al-1"].status is AlertStatus.CANCELED


def test_a_trigger_that_does_not_meet_the_condition_is_rejected() -> None:
    alerts = Alerts()
    alerts.handle(create(level=Decimal("101.00")), market())
    assert rejection(alerts.handle(trigger(price=10_099), market()).events) is (
        AlertRejectReason.CONDITION_NOT_MET
    )
    assert rejection(alerts.handle(trigger(reference=10_100), market()).events) is (
        AlertRejectReason.CONDITION_NOT_MET
    )  # it was already above: no crossing
    alerts.handle(
        create("al-2", condition=AlertCondition.MOVES_PCT, pct=Decimal("1"), window_s=10),
        market(),
    )
    assert (
        rejection(alerts.handle(trigger("al-2", price=10_100, reference=10_000), market()).events)
        is AlertRejectReason.CONDITION_NOT_MET
    )  # exactly 1 % is not more than 1 %
    late = trigger(
        "al-2", price=10_200, reference=10_000, traded_at=20 * SECOND, reference_at=5 * SECOND
    )
    assert rejection(alerts.handle(late, market()).events) is AlertRejectReason.CONDITION_NOT_MET
    (event,) = alerts.handle(trigger("al-2", price=9_899, reference=10_000), market()).events
    assert isinstance(event, AlertTriggered)
    assert rejection(alerts.handle(trigger("al-404"), market()).events) is (
        AlertRejectReason.UNKNOWN_ALERT
    )


def test_an_account_has_a_bounded_number_of_active_alerts() -> None:
    alerts = Alerts()
    for i in range(MAX_ACTIVE_PER_ACCOUNT):
        assert type(alerts.handle(create(f"al-{i}"), market()).events[0]) is AlertCreated
    assert rejection(alerts.handle(create("al-x"), market()).events) is (
        AlertRejectReason.TOO_MANY_ALERTS
    )
    alerts.handle(cancel("al-0"), market())
    assert type(alerts.handle(create("al-x"), market()).events[0]) is AlertCreated


def test_replaying_the_events_and_loading_the_snapshot_give_the_same_state() -> None:
    alerts = Alerts()
    log: list[Event] = []
    for command in (
        create("al-1"),
        create("al-2", account=f.BOB, condition=AlertCondition.CROSSES_BELOW, level=Decimal("99")),
        create("al-3", condition=AlertCondition.MOVES_PCT, pct=Decimal("3"), window_s=30),
        cancel("al-2", account=f.BOB),
        trigger("al-1"),
        create("al-1"),  # rejected
    ):
        log += alerts.handle(command, market()).events
    replayed = Alerts()
    for event in log:
        replayed.apply(from_dict(to_dict(event)))  # through the codec, as the log stores them
    assert replayed.state_hash() == alerts.state_hash()
    restored = Alerts.from_snapshot(alerts.snapshot())
    assert restored.state_hash() == alerts.state_hash()
    restored.handle(create("al-4"), market())
    assert [a.alert_id for a in restored.active()] == ["al-3", "al-4"]


def test_the_known_market_learns_accounts_and_symbols_from_the_events() -> None:
    known = KnownMarket([], {}, lambda _: 1)
    known.observe(Exchange().handle(f.open_account(f.CAROL)).events)
    assert known.has_account(f.CAROL) and not known.has_account(f.ALICE)
    listing = f.list_instrument(symbol="XYZ-USD", base="XYZ")
    known.observe(Exchange().handle(listing).events)
    assert known.tick_size("XYZ-USD") == Decimal("0.01")


# --- the evaluator's pure part ----------------------------------------------------------------


class Log:
    def __init__(self) -> None:
        self.position = 0
        self.trade_id = 0

    def envelope(self, event: Event) -> Envelope:
        self.position += 1
        return Envelope(self.position, f"e-{self.position}", event)

    def trade(self, price: int, at_s: float) -> Envelope:
        self.trade_id += 1
        return self.envelope(
            TradeExecuted(
                command_id=f"t{self.trade_id}",
                correlation_id="c",
                timestamp_ns=int(at_s * SECOND),
                symbol=f.SYMBOL,
                trade_id=self.trade_id,
                price_ticks=price,
                qty_lots=1,
                notional_atoms=price,
                maker_order_id=OrderId("m"),
                taker_order_id=OrderId("t"),
                maker_account_id=f.BOB,
                taker_account_id=f.ALICE,
                taker_side=Side.BUY,
                maker_fee_atoms=0,
                taker_fee_atoms=0,
            )
        )

    def created(
        self,
        alert_id: str,
        condition: AlertCondition,
        *,
        level: int = 0,
        pct_bps: int = 0,
        window_s: int = 0,
        last: int = 10_000,
        at_s: float = 0,
    ) -> Envelope:
        return self.envelope(
            AlertCreated(
                command_id="c",
                correlation_id="c",
                timestamp_ns=int(at_s * SECOND),
                alert_id=AlertId(alert_id),
                account_id=f.ALICE,
                symbol=f.SYMBOL,
                condition=condition,
                level_ticks=level,
                pct_bps=pct_bps,
                window_s=window_s,
                last_price_ticks=last,
            )
        )


def fired(watch: AlertWatch, envelopes: list[Envelope]) -> list[tuple[str, int, int]]:
    return [
        (x.alert_id, x.price_ticks, x.reference_price_ticks)
        for e in envelopes
        for x in watch.observe(e)
    ]


def test_a_crossing_fires_on_the_first_trade_past_the_level_and_only_once() -> None:
    log, watch = Log(), AlertWatch()
    envelopes = [
        log.created("up", AlertCondition.CROSSES_ABOVE, level=10_100),
        log.created("down", AlertCondition.CROSSES_BELOW, level=9_900),
        log.trade(10_050, 1),
        log.trade(10_100, 2),  # up: from 10_050 to the level
        log.trade(10_200, 3),
        log.trade(9_000, 4),  # down
        log.trade(10_300, 5),
    ]
    assert fired(watch, envelopes) == [("up", 10_100, 10_050), ("down", 9_000, 10_200)]


def test_a_crossing_needs_the_price_to_start_on_the_other_side() -> None:
    log, watch = Log(), AlertWatch()
    envelopes = [
        log.created("up", AlertCondition.CROSSES_ABOVE, level=10_100, last=10_500),
        log.trade(10_400, 1),  # above already: no crossing
        log.trade(10_000, 2),  # back below
        log.trade(10_150, 3),  # now it crosses
    ]
    assert fired(watch, envelopes) == [("up", 10_150, 10_000)]


def test_a_move_fires_against_the_trades_in_its_window_since_creation() -> None:
    log, watch = Log(), AlertWatch()
    envelopes = [
        log.trade(5_000, 0),  # before the alert: not in its window
        log.created("mv", AlertCondition.MOVES_PCT, pct_bps=200, window_s=10, at_s=1),
        log.trade(10_000, 2),
        log.trade(10_150, 5),  # +1.5 %
        log.trade(10_210, 13),  # +2.1 % against 10_000, which is out of the window by now
        log.trade(9_990, 14),  # -2.15 % against 10_210 (within 10 s)
        log.trade(5_000, 15),
    ]
    assert fired(watch, envelopes) == [("mv", 9_990, 10_210)]


def test_the_evaluator_skips_closed_alerts_and_finds_where_to_start() -> None:
    log = Log()
    alert_events = [
        log.created("a", AlertCondition.CROSSES_ABOVE, level=10_100),
        log.created("b", AlertCondition.CROSSES_ABOVE, level=10_100),
        log.envelope(
            AlertTriggered(
                command_id="c",
                correlation_id="c",
                timestamp_ns=1,
                alert_id=AlertId("a"),
                account_id=f.ALICE,
                symbol=f.SYMBOL,
                condition=AlertCondition.CROSSES_ABOVE,
                trade_id=1,
                trade_position=9,
                price_ticks=10_100,
                traded_at_ns=1,
                reference_price_ticks=10_000,
                reference_at_ns=0,
            )
        ),
    ]
    closed, oldest = open_alerts(alert_events)
    assert closed == {"a"} and oldest == 2
    watch = AlertWatch(closed)
    assert fired(watch, [*alert_events[:2], log.trade(10_200, 1)]) == [("b", 10_200, 10_000)]
