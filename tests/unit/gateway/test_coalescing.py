"""Coalescer: concurrent asks share one round trip, each gets its own answer, errors reach all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from infra.auth_store import Coalescer


class Backend:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_next = False

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)  # on the wire: later asks wait for the next round trip
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("down")
        return [10 * item for item in items]


def test_asks_made_together_go_out_as_one_batch_and_get_their_own_answers() -> None:
    backend = Backend()
    ask = Coalescer(backend.run)

    async def run() -> list[int]:
        return await asyncio.gather(*(ask(i) for i in range(5)))

    assert asyncio.run(run()) == [0, 10, 20, 30, 40]
    assert backend.batches == [[0, 1, 2, 3, 4]]


def test_asks_made_while_a_round_trip_is_out_go_in_the_next_one() -> None:
    backend = Backend()
    ask = Coalescer(backend.run)

    async def run() -> list[int]:
        first = asyncio.ensure_future(ask(1))
        await asyncio.sleep(0)  # the first round trip starts
        later = [asyncio.ensure_future(ask(i)) for i in (2, 3)]
        return [await first, *[await x for x in later]]

    assert asyncio.run(run()) == [10, 20, 30]
    assert backend.batches == [[1], [2, 3]]


def test_a_failed_round_trip_fails_its_askers_only() -> None:
    backend = Backend()
    ask = Coalescer(backend.run)

    async def run() -> int:
        backend.fail_next = True
        results = await asyncio.gather(ask(1), ask(2), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        return await ask(3)

    assert asyncio.run(run()) == 30


def test_a_coalescer_outlives_its_event_loop() -> None:
    backend = Backend()
    ask = Coalescer(backend.run)
    assert asyncio.run(ask(1)) == 10
    assert asyncio.run(ask(2)) == 20


def test_a_cancelled_asker_does_not_disturb_the_others() -> None:
    backend = Backend()
    ask = Coalescer(backend.run)

    async def run() -> int:
        gone = asyncio.ensure_future(ask(1))
        kept = asyncio.ensure_future(ask(2))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(run()) == 20
