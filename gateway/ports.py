"""The ports the gateway needs: users, token revocation, rate limits, idempotency, the core.

Implemented in infra (PostgreSQL, Redis) and by the live core; faked in unit tests by
subclassing these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from commands.core import CommandResult
from commands.ports import RecordedEvent
from domain.commands import Command
from domain.kernel import AnyExchange


class ServiceUnavailable(RuntimeError):
    """A service the gateway depends on (Redis, PostgreSQL, the core) does not answer."""


class Role(StrEnum):
    TRADER = "trader"  # acts on and sees only the accounts it owns
    AUDITOR = "auditor"  # reads everything, including the event history; changes nothing
    ADMIN = "admin"  # instruments, halts, deposits and withdrawals, opening accounts


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    accounts: frozenset[str] = field(default_factory=frozenset)
    disabled: bool = False


class UserDirectory(Protocol):
    """Who may log in: passwords and API keys, both stored hashed."""

    async def authenticate(self, username: str, password: str) -> User | None:
        """The enabled user with this password, else None (no hint which part was wrong)."""
        ...

    async def authenticate_api_key(self, key_id: str, secret: str) -> User | None:
        """The enabled user owning this live API key, else None."""
        ...

    async def get(self, username: str) -> User | None: ...


RotateOutcome = Literal["rotated", "unknown", "reused"]


class TokenRevocations(Protocol):
    """Revoked access tokens, refresh-token families and users (held in Redis)."""

    async def revoke_token(self, jti: str, ttl_s: int) -> None: ...

    async def revoke_family(self, family: str, ttl_s: int) -> None: ...

    async def is_revoked(self, jti: str, family: str | None, username: str, issued_at: int) -> bool:
        """True if the token, its refresh family or every token of its user issued up to
        ``issued_at`` (seconds) was revoked."""
        ...

    async def start_family(self, family: str, refresh_jti: str, ttl_s: int) -> None:
        """A new login: ``refresh_jti`` is the family's only valid refresh token."""
        ...

    async def rotate(self, family: str, old_jti: str, new_jti: str, ttl_s: int) -> RotateOutcome:
        """Atomically replace the family's current refresh token. Presenting one that was
        already rotated away is a reuse: the whole family is revoked."""
        ...


class Admission(Protocol):
    """A token's revocation check and its user's rate-limit hit in one step (optional: the
    gateway otherwise asks `TokenRevocations` and `RateLimiter` in turn, with the same
    answers)."""

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
        """(revoked, seconds to wait or None); a revoked token's request is not counted."""
        ...


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        """Count one request; None if within ``limit`` per window, else seconds to wait."""
        ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdempotencyBegin:
    """``new``: go ahead; ``replay``: return ``stored``; ``in_progress``: the first request
    is still running; ``mismatch``: the key was used for a different request."""

    state: Literal["new", "replay", "in_progress", "mismatch"]
    stored: StoredResponse | None = None


class IdempotencyStore(Protocol):
    async def begin(self, key: str, fingerprint: str, ttl_s: int) -> IdempotencyBegin: ...

    async def complete(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: int
    ) -> None: ...

    async def abandon(self, key: str) -> None:
        """The request failed before the core decided it: a retry may run it."""
        ...


class CoreApi(Protocol):
    """The live core, in process (commands.core.Core)."""

    @property
    def exchange(self) -> AnyExchange: ...

    async def submit(self, command: Command) -> CommandResult: ...


class EventLog(Protocol):
    """The committed log, for auditors."""

    async def read(self, after: int = 0, limit: int = 10_000) -> list[RecordedEvent]: ...
