"""A live message from a subscription: the fan-out's envelope, unchanged."""

from __future__ import annotations

from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from read_api.scalars import BigInt


@strawberry.type
class LiveMessage:
    channel: str
    seq: BigInt = strawberry.field(description="rises by one per channel; a gap = missed")
    type: str
    data: JSON

    @classmethod
    def of(cls, message: dict[str, Any]) -> LiveMessage:
        return cls(
            channel=str(message.get("channel", "")),
            seq=BigInt(int(message.get("seq", 0))),
            type=str(message.get("type", "")),
            data=cast(JSON, message.get("data") or {}),
        )
