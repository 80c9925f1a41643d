"""Tamper evidence: walk the hash-chained log and report the first row that breaks the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from commands.ports import GENESIS_HASH, RecordedEvent, chain_hash
from infra.eventstore import PostgresEventStore


@dataclass(frozen=True)
class AuditResult:
    ok: bool
    checked: int
    position: int | None = None  # the first position where the chain breaks
    problem: str = ""


async def _walk(store: PostgresEventStore, batch: int) -> AsyncIterator[RecordedEvent]:
    after = 0
    while True:
        rows = await store.read(after, batch)
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].position


async def verify_log(
    store: PostgresEventStore,
    *,
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """Recompute every hash from the genesis hash; stop at the first break and say what it is."""
    expected = 1
    prev = GENESIS_HASH
    checked = 0
    async for row in _walk(store, batch):
        if row.position != expected:
            return AuditResult(
                False, checked, expected,
                f"position {expected} is missing (the next row is {row.position}): "
                "a row was removed or positions were rewritten",
            )  # fmt: skip
        if row.prev_hash != prev:
            return AuditResult(
                False, checked, row.position,
                f"the row at position {row.position} does not follow the row before it: "
                "a row was inserted, removed or reordered here",
            )  # fmt: skip
        if chain_hash(prev, row.position, row.event) != row.hash:
            return AuditResult(
                False, checked, row.position,
                f"the row at position {row.position} was altered: its content no longer "
                "matches its hash",
            )  # fmt: skip
        prev = row.hash
        expected += 1
        checked += 1
        if progress is not None and checked % batch == 0:
            progress(checked)
    return AuditResult(True, checked)
