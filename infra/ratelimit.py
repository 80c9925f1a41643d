"""Per-key request limits in Redis: a fixed window counter per key (INCR + EXPIRE)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from redis.asyncio import Redis

from infra.auth_store import guarded


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str = "tradecore:", clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        now = self.clock()
        window = int(now // window_s)
        name = f"{self.prefix}rl:{key}:{window}"

        async def run() -> int:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window_s + 1)
                count, _ = await pipe.execute()
            return int(count)

        count = await guarded(run)
        if count <= limit:
            return None
        return max(1, math.ceil((window + 1) * window_s - now))
