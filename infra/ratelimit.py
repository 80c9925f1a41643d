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


class Window:
    """The fixed window `now` falls in, for `key`: its counter's name, and how long a hit
    over the limit waits for the next window (also used by infra.admission)."""

    __slots__ = ("name", "now", "number", "window_s")

    def __init__(self, prefix: str, key: str, window_s: int, now: float) -> None:
        self.window_s = window_s
        self.now = now
        self.number = int(now // window_s)
        self.name = f"{prefix}rl:{key}:{self.number}"

    def wait(self, count: int, limit: int) -> int | None:
        """None if the window's `count`-th hit is within `limit`, else seconds to wait."""
        if count <= limit:
            return None
        return max(1, math.ceil((self.number + 1) * self.window_s - self.now))


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str = "tradecore:", clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._count = Coalescer(self._count_batch)

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        window = Window(self.prefix, key, window_s, self.clock())
        return window.wait(await self._count((window.name, window_s)), limit)

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
