"""`LiveFeed` over Redis pub/sub: channel ``<c>`` is the Redis channel ``tradecore:live:<c>``,
each message one JSON object ``{"channel", "seq", "type", "data"}``.

Pub/sub delivers only to subscribers connected at publish time: a subscription sees what is
published after its SUBSCRIBE, nothing older (a snapshot comes from a query).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from read_api.live import LiveMessage

PREFIX = "tradecore:live:"


class RedisLiveFeed:
    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    async def subscribe(self, channel: str) -> AsyncIterator[LiveMessage]:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.prefix + channel)
        try:
            async for raw in pubsub.listen():
                if raw.get("type") != "message":
                    continue
                message: Any = json.loads(raw["data"])
                if isinstance(message, dict):
                    yield message
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish(self, channel: str, seq: int, kind: str, data: dict[str, Any]) -> int:
        """Publish one message (the fan-out's job; used by tests and benchmarks). Returns
        how many subscribers got it."""
        body = json.dumps(
            {"channel": channel, "seq": seq, "type": kind, "data": data},
            separators=(",", ":"),
            default=str,
        )
        receivers: int = await self.redis.publish(self.prefix + channel, body)
        return receivers
