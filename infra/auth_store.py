"""Redis-held gateway state: token revocations, refresh-token families, idempotent responses.

Keys live under a prefix (``tradecore:`` by default; tests use their own) and expire with
what they protect, so Redis holds nothing that outlives its token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.ports import IdempotencyBegin, RotateOutcome, ServiceUnavailable, StoredResponse

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

# Atomically: the family's current refresh token is ARGV[1]? Then it becomes ARGV[2].
# A family whose current token is another one saw a reuse: revoke it whole.
_ROTATE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
redis.call('DEL', KEYS[1])
return -1
"""


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ServiceUnavailable(f"Redis does not answer: {exc}") from exc


class Coalescer(Generic[I, T]):
    """One Redis round trip for many callers: what is asked while a round trip is on the wire
    (or within the same event-loop turn) goes out together in the next one, the way the core
    groups commits. Nothing is cached: every answer comes from a round trip that started
    after it was asked for, so the stores keep their exact semantics (a revocation written
    by anyone is seen by the next check) at one round trip per batch instead of per request.
    ``run`` answers a batch of items in order."""

    def __init__(self, run: Callable[[Sequence[I]], Awaitable[Sequence[T]]]) -> None:
        self._run = run
        self._pending: list[tuple[I, asyncio.Future[T]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        task = self._task
        if task is not None and (task.done() or task.get_loop() is not loop):
            task = self._task = None  # a loop that ended (tests run one per case)
            self._pending = []
        self._pending.append((item, future))
        if task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._run([item for item, _ in batch])
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers to {len(batch)} asks")
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):  # checked above
                    if not future.done():
                        future.set_result(answer)
        finally:
            if self._task is asyncio.current_task():  # not replaced by another loop's drain
                self._task = None
                # cancelled with callers still waiting: they get the cancel too
                for _, future in self._pending:
                    future.cancel()
                self._pending = []


def revocation_keys(prefix: str, jti: str, username: str, family: str | None) -> list[str]:
    """The keys that revoke a token: its own, its user's stamp, its refresh family's (if
    any), in that order (also read by infra.admission)."""
    keys = [f"{prefix}rev:jti:{jti}", f"{prefix}rev:user:{username}"]
    if family is not None:
        keys.append(f"{prefix}rev:fam:{family}")
    return keys


class RedisTokenRevocations:
    def __init__(self, redis: Redis, prefix: str = "tradecore:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._check = Coalescer(self._check_batch)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def revoke_token(self, jti: str, ttl_s: int) -> None:
        await guarded(lambda: self.redis.set(self._k("rev", "jti", jti), "1", ex=max(1, ttl_s)))

    async def revoke_family(self, family: str, ttl_s: int) -> None:
        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self._k("rev", "fam", family), "1", ex=max(1, ttl_s))
                pipe.delete(self._k("fam", family))
                await pipe.execute()

        await guarded(run)

    async def revoke_user(self, username: str, ttl_s: int, at: int | None = None) -> None:
        """Every token of ``username`` issued up to now (seconds) is refused from now on."""
        stamp = str(int(time.time()) if at is None else at)
        await guarded(lambda: self.redis.set(self._k("rev", "user", username), stamp, ex=ttl_s))

    async def is_revoked(self, jti: str, family: str | None, username: str, issued_at: int) -> bool:
        keys = revocation_keys(self.prefix, jti, username, family)
        values = await self._check(keys)
        jti_hit, user_stamp, *family_hit = values
        if jti_hit is not None or any(v is not None for v in family_hit):
            return True
        return user_stamp is not None and issued_at <= int(user_stamp)

    async def _check_batch(self, batch: Sequence[list[str]]) -> list[list[Any]]:
        """The checks of one batch as one MGET; each gets its own keys' values back."""
        keys = [key for keys in batch for key in keys]
        values = await guarded(lambda: self.redis.mget(keys))
        out, at = [], 0
        for keys in batch:
            out.append(values[at : at + len(keys)])
            at += len(keys)
        return out

    async def start_family(self, family: str, refresh_jti: str, ttl_s: int) -> None:
        await guarded(lambda: self.redis.set(self._k("fam", family), refresh_jti, ex=ttl_s))

    async def rotate(self, family: str, old_jti: str, new_jti: str, ttl_s: int) -> RotateOutcome:
        keys = [self._k("fam", family), self._k("rev", "fam", family)]

        async def run() -> Any:
            return await cast(Any, self.redis.eval(_ROTATE, 2, *keys, old_jti, new_jti, ttl_s))

        result = int(await guarded(run))
        return "rotated" if result == 1 else "reused" if result == -1 else "unknown"


class RedisIdempotencyStore:
    """The first response to each (user, Idempotency-Key), with the request's fingerprint."""

    def __init__(self, redis: Redis, prefix: str = "tradecore:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    async def begin(self, key: str, fingerprint: str, ttl_s: int) -> IdempotencyBegin:
        pending = json.dumps({"fp": fingerprint, "state": "pending"})
        created = await guarded(lambda: self.redis.set(self._k(key), pending, nx=True, ex=ttl_s))
        if created:
            return IdempotencyBegin("new")
        raw = await guarded(lambda: self.redis.get(self._k(key)))
        if raw is None:  # expired or abandoned in between: try once more
            again = await guarded(lambda: self.redis.set(self._k(key), pending, nx=True, ex=ttl_s))
            return IdempotencyBegin("new" if again else "in_progress")
        record = json.loads(raw)
        if record["fp"] != fingerprint:
            return IdempotencyBegin("mismatch")
        if record["state"] != "done":
            return IdempotencyBegin("in_progress")
        return IdempotencyBegin("replay", StoredResponse(record["status"], record["body"]))

    async def complete(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: int
    ) -> None:
        record: dict[str, Any] = {"fp": fingerprint, "state": "done"}
        record.update(status=response.status, body=response.body)
        await guarded(lambda: self.redis.set(self._k(key), json.dumps(record), ex=ttl_s))

    async def abandon(self, key: str) -> None:
        await guarded(lambda: self.redis.delete(self._k(key)))
