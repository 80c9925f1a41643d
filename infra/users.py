"""Users and API keys in PostgreSQL: argon2 password hashes, sha256 API-key secrets.

API-key secrets are 256 random bits, so a fast hash is enough (no dictionary to try) and
keeps the client-credentials flow cheap; passwords are chosen by people and get argon2id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.ports import Role, ServiceUnavailable, User

KEY_PREFIX = "tck_"


class UserError(ValueError):
    """A user operation that cannot be done (exists already, unknown user, ...)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    secret: str  # shown once, never stored


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _user(row: asyncpg.Record) -> User:
    return User(
        username=row["username"],
        role=Role(row["role"]),
        accounts=frozenset(row["accounts"]),
        disabled=row["disabled"],
    )


class PostgresUserDirectory:
    """The gateway's UserDirectory, and what `tradecore users` manages."""

    def __init__(self, dsn: str, *, hasher: PasswordHasher | None = None) -> None:
        self.dsn = dsn
        self.hasher = hasher or PasswordHasher()
        self._pool: asyncpg.Pool | None = None
        # Verified against when the user does not exist, so timing does not tell.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ServiceUnavailable("the user directory is not open")
        return self._pool

    # -- the gateway's port -------------------------------------------------------------------

    async def get(self, username: str) -> User | None:
        if "\x00" in username:  # PostgreSQL text cannot hold NUL: no such user
            return None
        row = await self.pool.fetchrow(
            "SELECT username, role, accounts, disabled FROM users WHERE username = $1", username
        )
        return None if row is None else _user(row)

    async def authenticate(self, username: str, password: str) -> User | None:
        try:
            row = None
            if "\x00" not in username:  # PostgreSQL text cannot hold NUL: no such user
                row = await self.pool.fetchrow(
                    "SELECT username, role, accounts, disabled, password_hash FROM users "
                    "WHERE username = $1",
                    username,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServiceUnavailable(f"the user directory does not answer: {exc}") from exc
        has_password = row is not None and bool(row["password_hash"])
        stored = row["password_hash"] if row is not None and has_password else self._dummy_hash
        ok = await asyncio.to_thread(self._verify, stored, password)
        if row is None or not has_password or not ok or row["disabled"]:
            return None
        return _user(row)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def authenticate_api_key(self, key_id: str, secret: str) -> User | None:
        if "\x00" in key_id:
            return None
        row = await self.pool.fetchrow(
            "SELECT u.username, u.role, u.accounts, u.disabled, k.secret_hash FROM api_keys k "
            "JOIN users u USING (username) WHERE k.key_id = $1 AND k.revoked_at IS NULL",
            key_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _secret_hash(secret)):
            return None
        return None if row["disabled"] else _user(row)

    # -- administration (tradecore users, the demo) ---------------------------------------------

    async def add(
        self, username: str, role: Role, accounts: list[str], password: str | None
    ) -> User:
        password_hash = None if password is None else self.hasher.hash(password)
        try:
            await self.pool.execute(
                "INSERT INTO users (username, password_hash, role, accounts) "
                "VALUES ($1, $2, $3, $4)",
                username,
                password_hash,
                role.value,
                sorted(set(accounts)),
            )
        except asyncpg.UniqueViolationError:
            raise UserError(f"user {username!r} exists already") from None
        return User(username=username, role=role, accounts=frozenset(accounts))

    async def list(self) -> list[User]:
        rows = await self.pool.fetch(
            "SELECT username, role, accounts, disabled FROM users ORDER BY username"
        )
        return [_user(row) for row in rows]

    async def disable(self, username: str) -> None:
        """The user can no longer log in; its API keys stop working (tokens: see Redis)."""
        done = await self.pool.execute(
            "UPDATE users SET disabled = true WHERE username = $1", username
        )
        if done == "UPDATE 0":
            raise UserError(f"no user {username!r}")

    async def add_api_key(self, username: str) -> ApiKey:
        if await self.get(username) is None:
            raise UserError(f"no user {username!r}")
        key = ApiKey(KEY_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(32))
        await self.pool.execute(
            "INSERT INTO api_keys (key_id, username, secret_hash) VALUES ($1, $2, $3)",
            key.key_id,
            username,
            _secret_hash(key.secret),
        )
        return key
