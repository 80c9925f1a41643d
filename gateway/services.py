"""What the REST routes run on: the ports, the token issuer and the gateway's limits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.body import DEFAULT_MAX_BODY
from gateway.ports import (
    Admission,
    CoreApi,
    EventLog,
    IdempotencyStore,
    RateLimiter,
    TokenRevocations,
    UserDirectory,
)
from gateway.tokens import TokenIssuer


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    rate_limit: int = 50  # requests per user per window
    rate_window_s: int = 1
    login_limit: int = 10  # token requests per username (or client id) per window
    login_window_s: int = 60
    max_body: int = DEFAULT_MAX_BODY
    idempotency_ttl_s: int = 24 * 3600


def _new_command_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex without the UUID object
    return f"gw-{os.urandom(16).hex()}"


@dataclass
class GatewayServices:
    core: CoreApi
    users: UserDirectory
    revocations: TokenRevocations
    limiter: RateLimiter
    idempotency: IdempotencyStore
    events: EventLog
    tokens: TokenIssuer
    config: GatewayConfig = field(default_factory=GatewayConfig)
    clock_ns: Callable[[], int] = time.time_ns
    new_command_id: Callable[[], str] = _new_command_id
    # revocation check + rate-limit hit in one round trip; without it, `revocations` and
    # `limiter` are asked in turn (same answers)
    admission: Admission | None = None
