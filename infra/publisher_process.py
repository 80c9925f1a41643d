"""The live publisher in a process of its own, beside the gateway's core.

Folding committed events into channel messages and writing them to Redis (infra.fanout's
`LivePublisher`) cost the order-entry loop about 30 µs per order, an eighth of its CPU. Here
the gateway keeps only the hook: `ProcessPublisher.on_commit` sends each committed batch
(position, type and payload of every event; pickled, one frame) down a pipe to a child
process that runs the same `LivePublisher`, on the machine's other core.

* **Start.** The parent seeds the `LiveState` from the freshly recovered core, as the
  in-process publisher did, and sends it to the child as the first frame; the child answers
  `ready` once it has read Redis's sequence numbers. Batches committed meanwhile wait in
  the gateway, bounded by `max_buffer` bytes like the pipe.
* **Nothing is folded twice or skipped:** every batch after the seed goes to the child, in
  commit order. If the child dies (starting or not), or falls so far behind that the
  pipe's buffer (or the batches waiting for it to start) passes `max_buffer` bytes, it is
  stopped and a new one is seeded from the core *at rest*
  (`Core.call_at_rest`: no batch in flight, so the exchange equals the committed log), and
  batches go to the new one from there. A new publisher skips one `seq` on every channel
  and rewrites every snapshot, as a restarted one always did, so subscribers see a gap and
  take a fresh snapshot: nothing is silently lost.
* **Health** comes from the child's counters (a JSON line on its stdout twice a second).
* The child reads until its stdin closes: when the gateway stops, or is killed, the child
  publishes what it holds (a few seconds at most) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, NamedTuple, cast

from redis.asyncio import Redis

from commands.ports import RecordedEvent
from gateway.health import ComponentHealth
from infra.fanout import LivePublisher, LiveState
from projections.runner import SERVING_GC_THRESHOLD, fewer_collections

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
READY_TIMEOUT_S = 60.0


class _Event(NamedTuple):
    event_type: str
    payload: bytes


class _Record(NamedTuple):
    """The parts of a `RecordedEvent` the publisher reads."""

    event: _Event
    position: int


class ProcessPublisher:
    """The core's commit hook, sending batches to a publisher process (see the module)."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        at_rest: Callable[[Callable[[], None]], None] | None = None,
        max_buffer: int = 256 * 1024 * 1024,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.at_rest = at_rest  # Core.call_at_rest: where a replacement child is seeded
        self.max_buffer = max_buffer
        self._exchange: Any = None
        self._alerts: Iterable[Any] = ()  # the core's alerts: a live view, read at each seed
        self._proc: asyncio.subprocess.Process | None = None
        self._stdin: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._respawning: asyncio.Task[None] | None = None  # held: the loop keeps weak refs
        self._ready: asyncio.Future[None] | None = None
        self._accepting = False  # the child is ready and `_waiting` went out before it
        self._waiting: list[bytes] = []  # frames for a child still starting
        self._waiting_bytes = 0  # bounded by max_buffer, as the pipe is
        self._stopping = False
        self._reseeding = False  # between a child's end and the seed of the next
        self.restarts = 0
        self.child_stats: dict[str, Any] = {}
        self.error = ""

    # -- the hook ---------------------------------------------------------------------------------

    def on_commit(self, batch: list[RecordedEvent]) -> None:
        """Called by the core right after COMMIT: one pickled frame into the pipe, no wait."""
        if self._reseeding:
            return  # before the next seed, which includes it
        body = pickle.dumps(
            [(r.position, r.event.event_type, r.event.payload) for r in batch], protocol=5
        )
        frame = _LENGTH.pack(len(body)) + body
        stdin = self._stdin
        if not self._accepting or stdin is None:
            self._waiting.append(frame)  # in order, before anything written after `ready`
            self._waiting_bytes += len(frame)
            if self._waiting_bytes > self.max_buffer:
                self._replace(f"{self.max_buffer:,} bytes waited for a starting publisher")
            return
        stdin.write(frame)
        if stdin.transport.get_write_buffer_size() > self.max_buffer:
            self._replace(f"the publisher process fell {self.max_buffer:,} bytes behind")

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self, exchange: Any, alerts: Iterable[Any] = ()) -> None:
        """Seed from the recovered core (right after `core.start`, before any command) and
        start the child; returns once it is ready. `alerts`: a view that stays current
        (`core.alerts.alerts.values()`): a replacement child is seeded from it later."""
        self._exchange = exchange
        self._alerts = alerts
        await self._spawn(self._seed())

    def _seed(self) -> LiveState:
        state = LiveState()
        state.seed(self._exchange, list(self._alerts))
        return state

    async def _spawn(self, state: LiveState) -> None:
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._accepting = False
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infra.publisher_process", self.redis_url, self.prefix,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        self._proc, self._stdin = proc, proc.stdin
        body = pickle.dumps(state, protocol=5)
        proc.stdin.write(_LENGTH.pack(len(body)) + body)
        self._reader = asyncio.create_task(
            self._read(proc, ready), name="tradecore-publisher-child"
        )
        try:
            await asyncio.wait_for(asyncio.shield(ready), READY_TIMEOUT_S)
        except TimeoutError:
            if proc is not self._proc:
                return  # replaced while starting: its successor is on its way
            self.error = f"the publisher process was not ready in {READY_TIMEOUT_S:.0f} s"
            proc.kill()
            raise RuntimeError(self.error) from None
        if proc is not self._proc:
            return  # replaced while starting
        waiting, self._waiting, self._waiting_bytes = self._waiting, [], 0
        for frame in waiting:
            proc.stdin.write(frame)
        self._accepting = True

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> None:
        """The child's lines: `ready`, then its counters; its end, if not asked for."""
        assert proc.stdout is not None
        async for line in proc.stdout:
            text = line.decode().strip()
            if text == "ready":
                if not ready.done():
                    ready.set_result(None)
                continue
            with contextlib.suppress(ValueError):
                self.child_stats = json.loads(text)
        code = await proc.wait()
        if self._stopping or proc is not self._proc:
            return
        self._replace(f"the publisher process exited with code {code}")

    def _replace(self, why: str) -> None:
        """Stop the child; seed another from the core at rest."""
        if self._reseeding:
            return
        self.error = why
        log.error("%s: starting another one", why)
        self._reseeding = True
        self._accepting = False
        self._waiting.clear()
        self._waiting_bytes = 0
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)  # its start returns now: the child is no longer ours
        old = self._proc
        self._proc = self._stdin = None
        if old is not None and old.returncode is None:
            old.kill()
        if self.at_rest is None or self._exchange is None:
            return  # nothing to seed from: stays down (health says so)

        def seed_at_rest() -> None:
            state = self._seed()
            self._reseeding = False  # batches from here on queue for the new child
            self.restarts += 1
            self._respawning = asyncio.get_running_loop().create_task(self._respawn(state))

        self.at_rest(seed_at_rest)

    async def _respawn(self, state: LiveState) -> None:
        try:
            await self._spawn(state)
            self.error = ""
        except Exception as exc:
            self._replace(f"the publisher process did not start again: {exc}")

    async def stop(self) -> None:
        """Close the pipe: the child publishes what it holds, then exits (5 s at most)."""
        self._stopping = True
        proc, stdin = self._proc, self._stdin
        if proc is None or stdin is None:
            return
        with contextlib.suppress(Exception):
            stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def health(self) -> ComponentHealth:
        stats = self.child_stats
        detail = (
            f"{stats.get('published', 0):,} messages published, {stats.get('dropped', 0):,} "
            f"dropped, {stats.get('queued', 0):,} queued (publisher process"
            f"{'' if self._proc is None else f' {self._proc.pid}'}"
            f"{f', restarted {self.restarts} times' if self.restarts else ''})"
        )
        alive = self._proc is not None and self._proc.returncode is None
        if not alive or self._reseeding:
            why = self.error or "the publisher process is not running"
            return ComponentHealth(
                name="live-publisher", kind="component", state="down", detail=f"{detail}; {why}"
            )
        error = stats.get("last_error") or ""
        if error:
            return ComponentHealth(
                name="live-publisher", kind="component", state="degraded",
                detail=f"{detail}; market data is being dropped: {error}",
            )  # fmt: skip
        return ComponentHealth(name="live-publisher", kind="component", state="up", detail=detail)


# -- the child ------------------------------------------------------------------------------------


async def _child(redis_url: str, prefix: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def frame() -> bytes | None:
        try:
            head = await reader.readexactly(_LENGTH.size)
            return await reader.readexactly(_LENGTH.unpack(head)[0])
        except asyncio.IncompleteReadError:
            return None  # the gateway closed the pipe (stopped or died)

    first = await frame()
    if first is None:
        return
    redis = Redis.from_url(redis_url)
    publisher = LivePublisher(redis, prefix)
    await publisher.start_seeded(pickle.loads(first))
    print("ready", flush=True)

    async def report() -> None:
        while True:
            counters = asdict(publisher.stats)
            counters["queued"] = len(publisher._pending)
            print(json.dumps(counters), flush=True)
            await asyncio.sleep(0.5)

    reporting = asyncio.create_task(report())
    try:
        with fewer_collections(SERVING_GC_THRESHOLD):
            while (body := await frame()) is not None:
                batch = [_Record(_Event(kind, payload), position)
                         for position, kind, payload in pickle.loads(body)]  # fmt: skip
                publisher.on_commit(cast(list[RecordedEvent], batch))
    finally:
        reporting.cancel()
        await publisher.stop()
        await redis.aclose()


def main() -> None:
    import signal

    import uvloop

    # Ctrl-C reaches the whole process group: the gateway stops this child by closing its
    # stdin, once the core has stopped, so the last batches are still published.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    redis_url, prefix = sys.argv[1], sys.argv[2]
    uvloop.run(_child(redis_url, prefix))


if __name__ == "__main__":
    main()
