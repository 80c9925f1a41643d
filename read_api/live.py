"""The seam between live market data and GraphQL subscriptions: the `LiveFeed` port.

A live message is ``{"channel", "seq", "type", "data"}``; ``seq`` rises by one per channel,
so a subscriber can tell it missed messages. Channels:

* ``trades.<SYMBOL>``, ``book.<SYMBOL>``, ``candles.<SYMBOL>.<INTERVAL>``,
  ``ticker.<SYMBOL>`` (market statistics): public to anyone signed in;
* ``orders.<ACCOUNT>``, ``alerts.<ACCOUNT>``: only the account's owner (and auditors, admins).

The fan-out that publishes them lives in ``infra``; ``read_api.live_redis`` is a Redis
pub/sub implementation of the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from projections.candles import INTERVALS

LiveMessage = dict[str, Any]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class LiveFeed(Protocol):
    def subscribe(self, channel: str) -> AsyncIterator[LiveMessage]:
        """Messages published on ``channel`` from now on, until the caller stops iterating."""
        ...


class BadChannel(ValueError):
    """A channel name built from a malformed symbol, account or interval."""


def _checked(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise BadChannel(f"{what} {name!r} is not valid")
    return name


def trades_channel(symbol: str) -> str:
    return f"trades.{_checked(symbol, 'symbol')}"


def book_channel(symbol: str) -> str:
    return f"book.{_checked(symbol, 'symbol')}"


def ticker_channel(symbol: str) -> str:
    return f"ticker.{_checked(symbol, 'symbol')}"


def candles_channel(symbol: str, interval: str) -> str:
    if interval not in INTERVALS:
        raise BadChannel(f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    return f"candles.{_checked(symbol, 'symbol')}.{interval}"


def orders_channel(account_id: str) -> str:
    return f"orders.{_checked(account_id, 'account')}"


def alerts_channel(account_id: str) -> str:
    return f"alerts.{_checked(account_id, 'account')}"


async def merged(feed: LiveFeed, channels: Sequence[str]) -> AsyncIterator[LiveMessage]:
    """Messages of several channels as they come (each channel keeps its own order)."""
    if len(channels) == 1:
        async for message in feed.subscribe(channels[0]):
            yield message
        return
    queue: asyncio.Queue[LiveMessage | BaseException] = asyncio.Queue(maxsize=1000)

    async def pump(channel: str) -> None:
        try:
            async for message in feed.subscribe(channel):
                await queue.put(message)
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(c)) for c in channels]
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
