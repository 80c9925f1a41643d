from __future__ import annotations

from typing import Any

import pytest
import strawberry

from read_api.context import ReadContext
from read_api.schema import build_schema
from tests.unit.read_api.fakes import ALICE, AUDITOR, BOB, FakeDb, FakeGateway, FakeLiveFeed


class Api:
    """The schema on fakes: run a document as the holder of ``token``."""

    def __init__(self, schema: strawberry.Schema) -> None:
        self.schema = schema
        self.db = FakeDb()
        self.gateway = FakeGateway(ALICE, BOB, AUDITOR)
        self.live = FakeLiveFeed()
        self.now = 1_000.0

    async def context(self, token: str | None) -> ReadContext:
        ctx = ReadContext(self.db, self.gateway, self.live, clock=lambda: self.now)
        await ctx.authenticate(None if token is None else f"Bearer {token}")
        return ctx

    async def run(
        self, document: str, token: str | None = "alice", **variables: Any
    ) -> strawberry.types.ExecutionResult:
        return await self.schema.execute(
            document, variable_values=variables, context_value=await self.context(token)
        )


def codes(result: strawberry.types.ExecutionResult) -> list[str]:
    return [str((e.extensions or {}).get("code")) for e in result.errors or []]


@pytest.fixture(scope="session")
def schema() -> strawberry.Schema:
    return build_schema(production=False)


@pytest.fixture
def api(schema: strawberry.Schema) -> Api:
    return Api(schema)
