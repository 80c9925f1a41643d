"""Who is asking, and the gateway port that answers that and runs commands.

`read_api` does not import the gateway: the gateway hands a `GatewayPort` in (see
`read_api.bridge`), which checks bearer tokens exactly as the REST API does and runs
mutations through the REST command handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

TRADER = "trader"
AUDITOR = "auditor"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Viewer:
    username: str
    role: str
    accounts: frozenset[str] = field(default_factory=frozenset)
    authorization: str = ""  # the "Bearer …" header value, passed on to commands
    expires_at: int | None = None  # the token's exp (seconds); subscriptions end there

    def may_read(self, account_id: str) -> bool:
        return self.role != TRADER or account_id in self.accounts

    @property
    def audits(self) -> bool:
        return self.role in (AUDITOR, ADMIN)


@dataclass(frozen=True, slots=True)
class CommandReply:
    status: int
    body: dict[str, Any]
    replayed: bool = False  # an Idempotency-Key retry got the stored first answer


class GatewayPort(Protocol):
    async def authenticate(self, authorization: str) -> Viewer:
        """The caller of this ``Authorization`` value; raises `ReadApiError` (the REST
        codes: ``invalid_token``, ``token_expired``, ``token_revoked``, ``rate_limited``…)."""
        ...

    async def command(
        self,
        viewer: Viewer,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> CommandReply:
        """Run one REST command as ``viewer`` and return its answer."""
        ...
