"""infra.admission.RedisAdmission answers as the revocation check followed by the rate-limit
hit did (infra.auth_store.RedisTokenRevocations, infra.ratelimit.RedisRateLimiter), on the
real Redis, for concurrent requests of many users and tokens, some revoked."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from infra.admission import RedisAdmission
from infra.auth_store import RedisTokenRevocations
from infra.ratelimit import RedisRateLimiter
from infra.settings import Settings

pytestmark = pytest.mark.integration

LIMIT, WINDOW = 5, 60


async def revoke_some(redis: Redis, prefix: str) -> None:
    revocations = RedisTokenRevocations(redis, prefix)
    await revocations.revoke_token("jti-3", 60)
    await revocations.revoke_family("fam-2", 60)
    await revocations.revoke_user("u4", 60, at=1_000)  # tokens issued up to second 1,000


def requests(rng: random.Random) -> list[tuple[str, str | None, str, int]]:
    out = []
    for _ in range(120):
        user = f"u{rng.randrange(6)}"
        family = rng.choice([None, "fam-1", "fam-2"])
        out.append((f"jti-{rng.randrange(8)}", family, user, rng.choice([999, 1_000, 1_001])))
    return out


Request = tuple[str, str | None, str, int]  # jti, refresh family, user, issued at (s)
CLOCK = 5_000.5  # one window for every request


async def in_turn(redis: Redis, prefix: str, batch: list[Request]) -> list[tuple[bool, Any]]:
    revocations = RedisTokenRevocations(redis, prefix)
    limiter = RedisRateLimiter(redis, prefix, clock=lambda: CLOCK)

    async def one(r: Request) -> tuple[bool, int | None]:
        jti, family, user, issued = r
        if await revocations.is_revoked(jti, family, user, issued):
            return True, None
        return False, await limiter.hit(f"user:{user}", LIMIT, WINDOW)

    return await run(one, batch)


async def at_once(redis: Redis, prefix: str, batch: list[Request]) -> list[tuple[bool, Any]]:
    admission = RedisAdmission(redis, prefix, clock=lambda: CLOCK)

    async def one(r: Request) -> tuple[bool, int | None]:
        jti, family, user, issued = r
        return await admission.admit(jti, family, user, issued, f"user:{user}", LIMIT, WINDOW)

    return await run(one, batch)


async def run(one: Any, batch: list[Request]) -> list[tuple[bool, Any]]:
    """The first 40 one by one, the rest concurrently (the order of arrival decides who is
    over the limit, and it is the same for both ways)."""
    answers = [await one(r) for r in batch[:40]]
    return answers + list(await asyncio.gather(*(one(r) for r in batch[40:])))


async def test_one_round_trip_gives_the_answers_of_the_check_then_the_hit() -> None:
    redis = Redis.from_url(Settings(env="test").redis_dsn)
    batch = requests(random.Random(11))
    try:
        answers = []
        for way in (in_turn, at_once):
            prefix = f"test:admission:{uuid.uuid4().hex}:"
            await revoke_some(redis, prefix)
            answers.append(await way(redis, prefix, batch))
            counters = [k async for k in redis.scan_iter(match=f"{prefix}rl:*")]
            assert counters and all([await redis.ttl(k) == WINDOW + 1 for k in counters]), way
            await redis.delete(*[k async for k in redis.scan_iter(match=f"{prefix}*")])
        separate, combined = answers
        for i, (a, b) in enumerate(zip(separate, combined, strict=True)):
            assert a == b, (i, batch[i], a, b)
        assert any(revoked for revoked, _ in separate)
        assert any(wait == 40 for _, wait in separate)  # over: 5,040 - 5,000.5 s to the next window
        assert any(not revoked and wait is None for revoked, wait in separate)
    finally:
        await redis.aclose()
