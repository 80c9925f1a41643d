"""The result of deciding one command: the events it produced, or a repeat of an earlier one.

Kept apart from ``domain.exchange`` so that it stays an ordinary (interpreted) frozen
dataclass even when the exchange module is compiled, which lets ``new_outcome`` build it
without the frozen ``__setattr__`` cost (see ``domain.events.frozen_builder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.events import Event, frozen_builder


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``handle`` decided. ``duplicate`` is true when the command repeated an earlier
    PlaceOrder (same account and client order id): ``events`` are then the original
    outcome and nothing new happened."""

    events: tuple[Event, ...]
    duplicate: bool = False


new_outcome: Callable[[tuple[Event, ...], bool], Outcome] = frozen_builder(Outcome)
