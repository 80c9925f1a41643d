"""The `alerts.<ACCOUNT>` channel's snapshot lists the account's open alerts: armed by
AlertCreated, gone with AlertTriggered or AlertCanceled, and the same after a restart (seeded
from the core's alerts) as when folded from the log."""

from __future__ import annotations

import json
from typing import Any

from commands.core import Streams
from commands.ports import RecordedEvent
from domain.alerts import Alerts
from domain.events import (
    AlertCanceled,
    AlertCondition,
    AlertCreated,
    AlertId,
    AlertRejected,
    AlertRejectReason,
    AlertTriggered,
    Event,
)
from domain.values import AccountId, Symbol
from gateway.ws.channels import parse_channel
from infra.fanout import LiveState, Message, snapshot_data

AT = 1_700_000_000_000_000_000
BTC = Symbol("BTC-USD")


def meta() -> dict[str, Any]:
    return {"command_id": "c", "correlation_id": "c", "timestamp_ns": AT}


def created(alert_id: str, account: str = "alice-1") -> AlertCreated:
    return AlertCreated(
        **meta(), alert_id=AlertId(alert_id), account_id=AccountId(account), symbol=BTC,
        condition=AlertCondition.CROSSES_ABOVE, level_ticks=3_010_000, pct_bps=0, window_s=0,
        last_price_ticks=3_000_000,
    )  # fmt: skip


def triggered(alert_id: str, account: str = "alice-1") -> AlertTriggered:
    return AlertTriggered(
        **meta(), alert_id=AlertId(alert_id), account_id=AccountId(account), symbol=BTC,
        condition=AlertCondition.CROSSES_ABOVE, trade_id=7, trade_position=9,
        price_ticks=3_020_000, traded_at_ns=1, reference_price_ticks=3_000_000,
        reference_at_ns=1,
    )  # fmt: skip


def canceled(alert_id: str, account: str = "alice-1") -> AlertCanceled:
    return AlertCanceled(
        **meta(), alert_id=AlertId(alert_id), account_id=AccountId(account), symbol=BTC
    )


def rejected(alert_id: str, account: str = "alice-1") -> AlertRejected:
    return AlertRejected(
        **meta(), alert_id=AlertId(alert_id), account_id=AccountId(account), symbol=BTC,
        command_type="cancel_alert", reason=AlertRejectReason.ALREADY_CANCELED, detail="",
    )  # fmt: skip


class Channel:
    """A channel's snapshot hash, as Redis would hold it after each message's state."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def apply(self, message: Message) -> None:
        if message.reset_state:
            self.state = {}
        for name, value in message.state.items():
            if value is None:
                self.state.pop(name, None)
            else:
                self.state[name] = value

    def open_alerts(self, name: str = "alerts.alice-1") -> list[str]:
        channel = parse_channel(name)
        assert channel is not None
        return [a["alert_id"] for a in snapshot_data(channel, self.state)["alerts"]]


def fold(state: LiveState, events: list[Event], channel: Channel) -> list[Message]:
    streams = Streams()
    rows = [RecordedEvent(streams.envelope(e, i), i + 1, b"", b"", 1) for i, e in enumerate(events)]
    messages = state.fold(rows)
    for message in messages:
        if message.channel == "alerts.alice-1":
            channel.apply(message)
    return messages


def test_the_snapshot_holds_the_open_alerts_with_their_conditions() -> None:
    state, channel = LiveState(), Channel()
    messages = fold(state, [created("al-1"), created("al-2"), created("al-3")], channel)
    assert [m.type for m in messages] == ["AlertCreated"] * 3
    assert channel.open_alerts() == ["al-1", "al-2", "al-3"]
    first: dict[str, Any] = json.loads(channel.state["al-1"])
    assert first == {
        "alert_id": "al-1", "account_id": "alice-1", "symbol": "BTC-USD",
        "condition": "crosses_above", "level_ticks": 3_010_000, "pct_bps": 0, "window_s": 0,
        "last_price_ticks": 3_000_000, "timestamp_ns": AT,
    }  # fmt: skip

    fold(state, [triggered("al-1"), canceled("al-3"), rejected("al-3")], channel)
    assert channel.open_alerts() == ["al-2"]
    assert list(state.alerts) == ["alice-1"] and list(state.alerts["alice-1"]) == ["al-2"]


def test_a_restarted_publisher_seeded_from_the_core_has_the_same_snapshot() -> None:
    events: list[Event] = [created("al-1"), created("al-2"), canceled("al-1"),
                           created("bo-1", "bob-1")]  # fmt: skip
    folded, channel = LiveState(), Channel()
    fold(folded, events, channel)

    core = Alerts()
    for event in events:
        core.apply(event)

    class NoExchange:
        def __init__(self) -> None:
            self.instruments: dict[str, Any] = {}
            self.books: dict[str, Any] = {}
            self.orders: dict[str, Any] = {}
            self.last_price: dict[str, int] = {}

    seeded = LiveState()
    seeded.seed(NoExchange(), core.alerts.values())
    assert seeded.alerts == folded.alerts
    rewritten = Channel()
    for message in seeded.full_state():
        if message.channel == "alerts.alice-1":
            rewritten.apply(message)
    assert rewritten.state == channel.state and rewritten.open_alerts() == ["al-2"]
    assert any(m.channel == "alerts.bob-1" for m in seeded.full_state())


def test_an_account_whose_alerts_all_closed_leaves_no_snapshot_behind() -> None:
    state, channel = LiveState(), Channel()
    fold(state, [created("al-1"), triggered("al-1")], channel)
    assert channel.open_alerts() == [] and state.alerts == {}
    assert not [m for m in state.full_state() if m.channel.startswith("alerts.")]
