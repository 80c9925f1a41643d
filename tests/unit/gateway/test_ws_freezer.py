"""gateway.ws.server.ConnectionFreezer: long-lived connections are frozen out of the cyclic
collector's walks in steps, and given back once most of them are gone."""

from __future__ import annotations

import gc

from gateway.ws.server import ConnectionFreezer


class Held:
    """Stands for a connection's objects: alive, tracked by the collector."""

    def __init__(self) -> None:
        self.refs: list[object] = [self]  # a cycle, as tasks and their coroutines make


def walked(objects: list[Held]) -> list[bool]:
    tracked = {id(o) for o in gc.get_objects()}  # what a full collection walks
    return [id(o) in tracked for o in objects]


def test_connections_are_frozen_every_n_accepted_and_given_back_when_half_are_gone() -> None:
    gc.unfreeze()
    freezer = ConnectionFreezer(every=4)
    held = []
    for connections in (1, 2, 3):
        held.append(Held())
        freezer.accepted(connections)
    assert gc.get_freeze_count() == 0 and all(walked(held))  # 3 of 4: not yet
    held.append(Held())
    freezer.accepted(4)
    frozen = gc.get_freeze_count()
    assert frozen >= len(held) and not any(walked(held))

    freezer.closed(3)
    freezer.closed(2)  # half of the 4 still there: stays frozen
    assert gc.get_freeze_count() == frozen
    freezer.closed(1)  # under half: back to the collector
    assert gc.get_freeze_count() == 0 and all(walked(held))
