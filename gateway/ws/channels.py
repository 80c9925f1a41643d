"""The live channels' names and the ports a WebSocket connection needs from the fan-out.

Channels: `trades.<SYMBOL>`, `book.<SYMBOL>`, `ticker.<SYMBOL>`,
`candles.<SYMBOL>.<INTERVAL>` (public market data) and `orders.<ACCOUNT>`,
`alerts.<ACCOUNT>` (private). Implemented by infra.fanout (Redis pub/sub).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

SECOND = 1_000_000_000
CANDLE_INTERVALS: dict[str, int] = {
    "1s": SECOND,
    "1m": 60 * SECOND,
    "5m": 300 * SECOND,
    "15m": 900 * SECOND,
    "1h": 3600 * SECOND,
    "1d": 86_400 * SECOND,
}
_SYMBOL = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
_ACCOUNT = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
CHANNEL_RE = re.compile(
    rf"^(?:(?P<market>trades|book|ticker)\.(?P<symbol>{_SYMBOL})"
    rf"|candles\.(?P<csymbol>{_SYMBOL})\.(?P<interval>{'|'.join(CANDLE_INTERVALS)})"
    rf"|(?P<private>orders|alerts)\.(?P<account>{_ACCOUNT}))$"
)
PRIVATE_KINDS = ("orders", "alerts")
CONFLATED_KINDS = ("book", "ticker")  # full-state or absolute-level updates: mergeable


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel name: `kind` is trades, book, ticker, candles, orders or alerts."""

    name: str
    kind: str
    symbol: str | None = None
    interval: str | None = None
    account: str | None = None


def parse_channel(name: str) -> Channel | None:
    """The channel, or None when the name is not one of ours."""
    match = CHANNEL_RE.match(name)
    if match is None:
        return None
    if match["market"]:
        return Channel(name, match["market"], symbol=match["symbol"])
    if match["csymbol"]:
        return Channel(name, "candles", symbol=match["csymbol"], interval=match["interval"])
    return Channel(name, match["private"], account=match["account"])


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    channel: str
    seq: int
    data: dict[str, Any]

    def message(self) -> dict[str, Any]:
        return {"channel": self.channel, "seq": self.seq, "type": "snapshot", "data": self.data}


class Listener(Protocol):
    """A local subscriber of the feed (a WebSocket connection, a GraphQL subscription)."""

    def deliver(self, channel: str, raw: str, message: dict[str, Any]) -> None:
        """A live message, in publish order; `raw` is its JSON text. Must not block."""
        ...

    def reset(self, channel: str) -> None:
        """Messages may have been lost (the feed reconnected): take a fresh snapshot."""
        ...


class LiveChannels(Protocol):
    """The fan-out as a gateway process sees it."""

    async def listen(self, channel: str, listener: Listener, timeout: float = 5.0) -> None:
        """Deliver `channel`'s messages to `listener`; returns once they flow."""
        ...

    async def unlisten(self, channel: str, listener: Listener) -> None: ...

    async def snapshot(self, channel: Channel) -> ChannelSnapshot | None:
        """The current snapshot with the seq of the last message it includes; None for an
        unknown symbol. Raises ServiceUnavailable when the fan-out cannot answer."""
        ...
