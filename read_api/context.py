"""The typed per-request (or per-websocket) context: the database, the loaders, the caller."""

from __future__ import annotations

import time
from collections.abc import Callable

from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from read_api.errors import ReadApiError, not_authenticated
from read_api.live import LiveFeed
from read_api.loaders import Loaders
from read_api.queries import Db
from read_api.viewer import GatewayPort, Viewer


class ReadContext(BaseContext):
    def __init__(
        self,
        db: Db,
        gateway: GatewayPort,
        live: LiveFeed | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.db = db
        self.gateway = gateway
        self.live = live
        self.clock = clock
        self.loaders = Loaders(db)
        self.viewer: Viewer | None = None
        self.auth_error: ReadApiError | None = None

    async def authenticate(self, authorization: str | None) -> None:
        """Remember who this is, or why not; fields refuse later (per field)."""
        self.viewer, self.auth_error = None, None
        if not authorization:
            return
        try:
            self.viewer = await self.gateway.authenticate(authorization)
        except ReadApiError as exc:
            self.auth_error = exc

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise self.auth_error or not_authenticated()
        if self.viewer.expires_at is not None and self.clock() >= self.viewer.expires_at:
            raise ReadApiError("token_expired", "the access token has expired", status=401)
        return self.viewer


Info = StrawberryInfo[ReadContext, None]
