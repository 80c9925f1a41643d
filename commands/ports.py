"""The ports the core needs from the outside: the event store and its records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from uuid import UUID

GENESIS_HASH = bytes(32)


class WriterFenced(RuntimeError):
    """Another core writes this log: this one is refused (or was displaced) and must not append."""


class NewEvent(NamedTuple):
    """An event decided by the core, not yet committed: everything but its position.

    A NamedTuple rather than a frozen dataclass: one is built per event on the hot path,
    and a tuple is several times cheaper to make (still immutable)."""

    event_id: UUID
    stream_id: UUID
    stream_version: int
    event_type: str
    schema_version: int
    payload: bytes  # canonical JSON, UTF-8
    occurred_at_ns: int
    command_id: str
    correlation_id: str

    @property
    def topic(self) -> str:
        return f"tradecore:{self.event_type}/v{self.schema_version}"


class RecordedEvent(NamedTuple):
    """A committed event: its global position and the hash chaining it to the one before."""

    event: NewEvent
    position: int
    prev_hash: bytes
    hash: bytes
    writer_epoch: int


def chain_hash(prev_hash: bytes, position: int, event: NewEvent) -> bytes:
    """sha256 over the previous hash and this row's content; any edit breaks the chain.

    sha256(prev_hash ‖ position ␟ stream id ␟ stream version ␟ event type ␟ schema ␟ payload),
    numbers in decimal, the stream id in its canonical text form.
    """
    return hashlib.sha256(
        prev_hash
        + b"%d\x1f%b\x1f%d\x1f%b\x1f%d\x1f"
        % (
            position,
            str(event.stream_id).encode(),
            event.stream_version,
            event.event_type.encode(),
            event.schema_version,
        )
        + event.payload
    ).digest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The core's state at ``position``. A writer may give the state as JSON ``text`` it
    already has (``state`` is then empty) so that it is not parsed and dumped again."""

    position: int
    state_hash: str
    state: dict[str, Any]
    text: str | None = None

    def split_text(self) -> tuple[str, dict[str, int]] | None:
        """``(exchange JSON text, stream versions)`` when the state is held as the text the
        core writes (``{"exchange":…,"streams":{…}}``), else None. The streams object maps
        stream keys to ints, so its opening ``,"streams":{`` is the last one in the text."""
        text = self.text
        head, sep = '{"exchange":', ',"streams":{'
        if self.state or text is None or not text.startswith(head):
            return None
        cut = text.rfind(sep)
        if cut < 0:
            return None
        streams: dict[str, int] = json.loads(text[cut + len(sep) - 1 : -1])
        return text[len(head) : cut], streams

    def loaded_state(self) -> dict[str, Any]:
        if self.text is not None and not self.state:
            loaded: dict[str, Any] = json.loads(self.text)
            return loaded
        return self.state


class EventStore(Protocol):
    """One ordered, append-only log with a single fenced writer."""

    async def acquire_writer(self, holder: str, *, wait: bool = False) -> int:
        """Become the only writer; returns the writer epoch. Raises WriterFenced if taken."""
        ...

    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        """Commit the events in one transaction, positions following the last one."""
        ...

    async def read(self, after: int = 0, limit: int = 10_000) -> list[RecordedEvent]: ...

    async def head(self) -> tuple[int, bytes]:
        """The last position and its hash (0 and the genesis hash for an empty log)."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def latest_snapshot(self) -> Snapshot | None: ...
