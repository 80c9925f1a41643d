"""Fakes of the gateway's ports (subclassing them) and a gateway on the real core in memory."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from fastapi import FastAPI

from commands.core import Core
from commands.ports import EventStore, NewEvent, RecordedEvent, Snapshot, chain_hash
from domain.commands import DepositFunds, ListInstrument, OpenAccount
from domain.values import AccountId, Asset, Symbol
from gateway.app import create_app
from gateway.health import ComponentHealth
from gateway.ports import (
    IdempotencyBegin,
    IdempotencyStore,
    RateLimiter,
    Role,
    RotateOutcome,
    StoredResponse,
    TokenRevocations,
    User,
    UserDirectory,
)
from gateway.services import GatewayConfig, GatewayServices
from gateway.tokens import TokenConfig, TokenIssuer

SECRET = "unit-test-secret-key-of-enough-length"


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self.rows: list[RecordedEvent] = []
        self.snapshots: list[Snapshot] = []

    async def acquire_writer(self, holder: str, *, wait: bool = False) -> int:
        return 1

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        out = []
        for event in events:
            position, prev = await self.head()
            row = RecordedEvent(event, position + 1, prev, chain_hash(prev, position + 1, event), 1)
            self.rows.append(row)
            out.append(row)
        return out

    async def read(self, after: int = 0, limit: int = 10_000) -> list[RecordedEvent]:
        return [r for r in self.rows if r.position > after][:limit]

    async def head(self) -> tuple[int, bytes]:
        return (self.rows[-1].position, self.rows[-1].hash) if self.rows else (0, bytes(32))

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    async def latest_snapshot(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


class FakeUsers(UserDirectory):
    def __init__(self) -> None:
        self.users: dict[str, tuple[User, str]] = {}
        self.keys: dict[str, tuple[str, str]] = {}

    def add(self, user: User, password: str) -> None:
        self.users[user.username] = (user, password)

    async def authenticate(self, username: str, password: str) -> User | None:
        found = self.users.get(username)
        if found is None or found[1] != password or found[0].disabled:
            return None
        return found[0]

    async def authenticate_api_key(self, key_id: str, secret: str) -> User | None:
        found = self.keys.get(key_id)
        if found is None or found[1] != secret:
            return None
        return await self.get(found[0])

    async def get(self, username: str) -> User | None:
        found = self.users.get(username)
        return None if found is None else found[0]


class FakeRevocations(TokenRevocations):
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.families: set[str] = set()
        self.current: dict[str, str] = {}
        self.users: dict[str, int] = {}

    async def revoke_token(self, jti: str, ttl_s: int) -> None:
        self.tokens.add(jti)

    async def revoke_family(self, family: str, ttl_s: int) -> None:
        self.families.add(family)
        self.current.pop(family, None)

    async def is_revoked(self, jti: str, family: str | None, username: str, issued_at: int) -> bool:
        if jti in self.tokens or family in self.families:
            return True
        return username in self.users and issued_at <= self.users[username]

    async def start_family(self, family: str, refresh_jti: str, ttl_s: int) -> None:
        self.current[family] = refresh_jti

    async def rotate(self, family: str, old_jti: str, new_jti: str, ttl_s: int) -> RotateOutcome:
        current = self.current.get(family)
        if current is None:
            return "unknown"
        if current != old_jti:
            await self.revoke_family(family, ttl_s)
            return "reused"
        self.current[family] = new_jti
        return "rotated"


class FakeLimiter(RateLimiter):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        self.counts[key] = self.counts.get(key, 0) + 1
        return None if self.counts[key] <= limit else window_s


class FakeIdempotency(IdempotencyStore):
    def __init__(self) -> None:
        self.records: dict[str, tuple[str, StoredResponse | None]] = {}

    async def begin(self, key: str, fingerprint: str, ttl_s: int) -> IdempotencyBegin:
        if key not in self.records:
            self.records[key] = (fingerprint, None)
            return IdempotencyBegin("new")
        stored_print, stored = self.records[key]
        if stored_print != fingerprint:
            return IdempotencyBegin("mismatch")
        return (
            IdempotencyBegin("in_progress")
            if stored is None
            else IdempotencyBegin("replay", stored)
        )

    async def complete(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: int
    ) -> None:
        self.records[key] = (fingerprint, response)

    async def abandon(self, key: str) -> None:
        self.records.pop(key, None)


class UpProbe:
    async def check(self) -> list[ComponentHealth]:
        return []


ALICE = User("alice", Role.TRADER, frozenset({"alice-1"}))
BOB = User("bob", Role.TRADER, frozenset({"bob-1"}))
AUDITOR = User("auditor", Role.AUDITOR)
ADMIN = User("admin", Role.ADMIN)
PASSWORD = "correct horse"


def _meta(n: int) -> dict[str, Any]:
    return {"command_id": f"setup-{n}", "correlation_id": f"setup-{n}", "timestamp_ns": n}


async def seed(core: Core) -> None:
    """ABC-USD (tick 0.01, lot 1) and the two traders' accounts, funded."""
    commands: list[Any] = [
        ListInstrument(
            **_meta(1),
            symbol=Symbol("ABC-USD"),
            base=Asset("ABC"),
            quote=Asset("USD"),
            base_decimals=2,
            quote_decimals=2,
            tick_size=Decimal("0.01"),
            lot_size=Decimal("1"),
            min_qty=Decimal("1"),
            max_qty=Decimal("1000"),
            reference_price=Decimal("100.00"),
            price_band_bps=1000,
            maker_fee_bps=10,
            taker_fee_bps=20,
        )
    ]
    n = 2
    for account in ("alice-1", "bob-1"):
        commands.append(OpenAccount(**_meta(n), account_id=AccountId(account)))
        n += 1
        for asset, amount in (("USD", "100000"), ("ABC", "1000")):
            commands.append(
                DepositFunds(
                    **_meta(n),
                    account_id=AccountId(account),
                    asset=Asset(asset),
                    amount=Decimal(amount),
                )
            )
            n += 1
    for command in commands:
        await core.submit(command)


class Harness:
    """A whole gateway on the real core (in memory) and the fakes; `app` for TestClient."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.store = MemoryEventStore()
        self.core = Core(self.store)
        self.users = FakeUsers()
        for user in (ALICE, BOB, AUDITOR, ADMIN):
            self.users.add(user, PASSWORD)
        self.revocations = FakeRevocations()
        self.limiter = FakeLimiter()
        self.idempotency = FakeIdempotency()
        self.tokens = TokenIssuer(TokenConfig(secret=SECRET))
        self.ids = iter(range(1, 10**9))
        self.services = GatewayServices(
            core=self.core,
            users=self.users,
            revocations=self.revocations,
            limiter=self.limiter,
            idempotency=self.idempotency,
            events=self.store,
            tokens=self.tokens,
            config=config or GatewayConfig(rate_limit=1000, login_limit=1000),
            clock_ns=lambda: 1_700_000_000_000_000_000,
            new_command_id=lambda: f"cmd-{next(self.ids)}",
        )
        self.app: FastAPI = create_app(
            UpProbe(), "0.0.0", services=self.services, lifespan=self._lifespan
        )

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.core.start("unit-test")
        await seed(self.core)
        try:
            yield
        finally:
            await self.core.stop()

    def fingerprint(self) -> str:
        """Everything in the log, to show that a refused request wrote nothing."""
        return hashlib.sha256(b"".join(r.hash for r in self.store.rows)).hexdigest()
