"""Per-key request limits in Redis: a fixed window counter per key (INCR + EXPIRE).

Concurrent hits are counted in one round trip (`Coalescer`): each key of a batch gets one
INCRBY of its number of hits, and every hit its own count, in arrival order, exactly as if
each had sent its own INCR.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from infra.auth_store import Coalescer, guarded


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str = "tradecore:", clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._count = Coalescer(self._count_batch)

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        now = self.clock()
        window = int(now // window_s)
        count = await self._count((f"{self.prefix}rl:{key}:{window}", window_s))
        if count <= limit:
            return None
        return max(1, math.ceil((window + 1) * window_s - now))

    async def _count_batch(self, hits: Sequence[tuple[str, int]]) -> list[int]:
        """The count each hit of the batch makes, in order; one MULTI/EXEC for them all."""
        per_key: dict[str, list[int]] = {}  # name -> [hits, window_s]
        for name, window_s in hits:
            entry = per_key.get(name)
            if entry is None:
                per_key[name] = [1, window_s]
            else:
                entry[0] += 1

        async def run() -> list[int]:
            async with self.redis.pipeline(transaction=True) as pipe:
                for name, (n, window_s) in per_key.items():
                    pipe.incrby(name, n)
                    pipe.expire(name, window_s + 1)
                replies = await pipe.execute()
            return [int(x) for x in replies[::2]]

        totals = await guarded(run)
        # The batch's hits of one key took the counts total-n+1 .. total, in arrival order.
        next_count = {
            name: total - n + 1
            for (name, (n, _)), total in zip(per_key.items(), totals, strict=True)
        }
        out = []
        for name, _ in hits:
            out.append(next_count[name])
            next_count[name] += 1
        return out
