"""CPU per request of the gateway's admission (gateway.deps.admit), in the gateway and in
Redis: the token's revocation check and the per-user rate-limit hit, against the real Redis,
in batches of concurrent requests as the order lane makes them.

* `in turn`: `RedisTokenRevocations.is_revoked` (one MGET per batch) then
  `RedisRateLimiter.hit` (one MULTI/EXEC per batch): how the gateway admitted until session 5;
* `one script`: `infra.admission.RedisAdmission`, both in one script call per batch.

    .venv/bin/python -m bench.admission              # 4 rounds of 10,000 requests each way
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop
from redis.asyncio import Redis

from infra.admission import RedisAdmission
from infra.auth_store import RedisTokenRevocations
from infra.ratelimit import RedisRateLimiter
from infra.settings import Settings

USERS = 14  # the serving benchmark's traders
LIMIT = 10**9


async def main(requests: int, concurrency: int, rounds: int) -> None:
    redis = Redis.from_url(Settings(env="test").redis_dsn)
    prefix = f"bench:admission:{uuid.uuid4().hex}:"
    admission = RedisAdmission(redis, prefix)
    revocations = RedisTokenRevocations(redis, prefix)
    limiter = RedisRateLimiter(redis, prefix)

    async def one_script(i: int) -> object:
        user = f"u{i % USERS}"
        return await admission.admit(f"jti-{i}", "fam", user, 1_000, f"user:{user}", LIMIT, 1)

    async def in_turn(i: int) -> object:
        user = f"u{i % USERS}"
        if await revocations.is_revoked(f"jti-{i}", "fam", user, 1_000):
            return True
        return await limiter.hit(f"user:{user}", LIMIT, 1)

    ways: dict[str, Callable[[int], Awaitable[object]]] = {
        "in turn": in_turn, "one script": one_script,
    }  # fmt: skip
    print(f"{requests:,} requests per round, {concurrency} at a time, {USERS} users")
    try:
        for r in range(rounds):
            for name, way in ways.items():
                started, n = time.process_time(), 0
                redis_started = await redis_cpu(redis)
                while n < requests:
                    await asyncio.gather(*(way(n + k) for k in range(concurrency)))
                    n += concurrency
                per = (time.process_time() - started) / n * 1e6
                in_redis = (await redis_cpu(redis) - redis_started) / n * 1e6
                print(
                    f"  round {r + 1}  {name:10}  {per:5.1f} µs of CPU per request here,"
                    f" {in_redis:5.1f} µs in Redis"
                )
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def redis_cpu(redis: Redis) -> float:
    """Seconds of CPU the Redis server has used (its one command thread and the rest)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    uvloop.run(main(args.requests, args.concurrency, args.rounds))
