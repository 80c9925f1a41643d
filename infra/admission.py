"""A request's admission in one Redis round trip: is its token revoked, and if not, its hit
of the per-user rate limit (gateway.deps.admit).

The same keys and the same answers as `RedisTokenRevocations.is_revoked` followed by
`RedisRateLimiter.hit` (tested side by side), but the requests of a batch (`Coalescer`: what
is asked while a round trip is on the wire goes in the next) share one script call instead
of an MGET and a MULTI/EXEC each. In the script every request is checked and then counted,
in arrival order, so the counts are exactly those of one INCR per request, and a revoked
token is not counted, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from gateway import jsontext
from infra.auth_store import Coalescer, guarded, revocation_keys
from infra.ratelimit import Window

# ARGV[1]: [[jti key, user key, family key or "", issued_at, rate key, window_s], ...].
# Returns, per request, -1 if revoked, else the count its hit made in its window.
_ADMIT = """
local out = {}
for i, r in ipairs(cjson.decode(ARGV[1])) do
  local revoked = redis.call('EXISTS', r[1]) == 1
  if not revoked and r[3] ~= '' then revoked = redis.call('EXISTS', r[3]) == 1 end
  if not revoked then
    local stamp = redis.call('GET', r[2])
    revoked = stamp ~= false and tonumber(r[4]) <= tonumber(stamp)
  end
  if revoked then
    out[i] = -1
  else
    local count = redis.call('INCR', r[5])
    if count == 1 then redis.call('EXPIRE', r[5], tonumber(r[6]) + 1) end
    out[i] = count
  end
end
return out
"""


class RedisAdmission:
    def __init__(
        self, redis: Redis, prefix: str = "tradecore:", clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._script = redis.register_script(_ADMIT)
        self._admit = Coalescer(self._admit_batch)

    async def admit(
        self,
        jti: str,
        family: str | None,
        username: str,
        issued_at: int,
        rate_key: str,
        limit: int,
        window_s: int,
    ) -> tuple[bool, int | None]:
        """(revoked, seconds to wait or None): the token's revocation check and, if it
        stands, one hit of `rate_key`'s limit of `limit` per `window_s`."""
        window = Window(self.prefix, rate_key, window_s, self.clock())
        jti_key, user_key, *family_key = revocation_keys(self.prefix, jti, username, family)
        count = await self._admit(
            [
                jti_key, user_key, family_key[0] if family_key else "", str(issued_at),
                window.name, str(window_s),
            ]
        )  # fmt: skip
        if count < 0:
            return True, None
        return False, window.wait(count, limit)

    async def _admit_batch(self, batch: Sequence[list[str]]) -> list[int]:
        async def run() -> Any:
            return await self._script(args=[jsontext.dumps_bytes(list(batch))])

        return [int(x) for x in cast(list[Any], await guarded(run))]
