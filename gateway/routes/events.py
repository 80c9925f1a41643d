"""GET /events: the committed log in order, for auditors (and admins)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import CurrentPrincipal, Services
from gateway.errors import documented
from gateway.ports import Role
from gateway.schemas import RecordedEventOut

router = APIRouter(prefix="/events", tags=["audit"])


@router.get("", response_model=list[RecordedEventOut], responses=documented(401, 403, 422, 429))
async def read_events(
    services: Services,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RecordedEventOut]:
    """Events after position ``after``, at most ``limit``, with their hashes."""
    principal.require_role(Role.AUDITOR, Role.ADMIN)
    rows = await services.events.read(after, limit)
    return [
        RecordedEventOut(
            position=row.position,
            event_id=str(row.event.event_id),
            stream_id=str(row.event.stream_id),
            stream_version=row.event.stream_version,
            event_type=row.event.event_type,
            schema_version=row.event.schema_version,
            occurred_at_ns=row.event.occurred_at_ns,
            command_id=row.event.command_id,
            correlation_id=row.event.correlation_id,
            hash=row.hash.hex(),
            event=json.loads(row.event.payload),
        )
        for row in rows
    ]
