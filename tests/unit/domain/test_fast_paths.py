"""The fast event builders, codecs and conversion memo give exactly the generic results."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import json
import sys
from pathlib import Path

import pytest

from domain import _native
from domain.events import (
    EVENT_TYPES,
    Event,
    OrderRejected,
    _slow_from_dict,
    _slow_to_dict,
    builder,
    from_dict,
    to_dict,
)
from domain.values import Reason
from tests.unit.domain.factories import ALICE, buy, funded_exchange
from tests.unit.domain.test_events import SAMPLES


def _values(event: Event) -> list[object]:
    return [getattr(event, f.name) for f in dataclasses.fields(event)]


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.event_type)
def test_builder_makes_the_same_frozen_event_as_the_constructor(cls: type[Event]) -> None:
    sample = SAMPLES[cls]
    built = builder(cls)(*_values(sample))
    assert type(built) is cls
    assert built == sample and hash(built) == hash(sample)
    assert repr(built) == repr(sample)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.command_id = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.event_type)
def test_fast_codec_agrees_with_the_generic_one(cls: type[Event]) -> None:
    sample = SAMPLES[cls]
    data = to_dict(sample)
    assert data == _slow_to_dict(sample)
    assert list(data) == list(_slow_to_dict(sample))  # same key order too
    wire = json.loads(json.dumps(data))
    assert from_dict(wire) == _slow_from_dict(wire) == sample
    assert type(from_dict(wire)) is cls


def test_unusual_input_still_gets_the_generic_error() -> None:
    data = to_dict(SAMPLES[OrderRejected])
    with pytest.raises(ValueError, match="is not a valid Reason"):
        from_dict({**data, "reason": "bored"})
    with pytest.raises(ValueError, match="expected an int"):
        from_dict({**to_dict(SAMPLES[EVENT_TYPES[4]]), "amount_atoms": True})


@pytest.mark.parametrize("price", ["NaN", "sNaN", "Infinity"])
def test_a_non_finite_price_is_rejected_for_tick_size(price: str) -> None:
    ex = funded_exchange()
    (event,) = ex.handle(buy(ALICE, price, "1")).events
    assert isinstance(event, OrderRejected) and event.reason is Reason.TICK_SIZE


def test_the_same_price_written_two_ways_converts_the_same() -> None:
    ex = funded_exchange()
    first = ex.handle(buy(ALICE, "99.5", "1")).events[0]
    second = ex.handle(buy(ALICE, "99.50", "1")).events[0]
    assert getattr(first, "price_ticks", None) == getattr(second, "price_ticks", None) == 9950


def test_stale_compiled_modules_are_ignored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADECORE_PURE_PYTHON", raising=False)
    for name in _native.NATIVE_MODULES:
        (tmp_path / f"{name}.py").write_text("# source\n")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / f"exchange{suffix}").write_bytes(b"")
    (tmp_path / _native.STAMP_NAME).write_text("not the digest\n")
    before = list(sys.meta_path)
    try:
        with pytest.warns(RuntimeWarning, match="out of date"):
            _native.guard(tmp_path)
        added = [f for f in sys.meta_path if f not in before]
        assert len(added) == 1
        spec = added[0].find_spec("domain.exchange", None)
        assert spec is not None and spec.origin == str(tmp_path / "exchange.py")
    finally:
        sys.meta_path[:] = before


def test_fresh_compiled_modules_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADECORE_PURE_PYTHON", raising=False)
    for name in _native.NATIVE_MODULES:
        (tmp_path / f"{name}.py").write_text("# source\n")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / f"exchange{suffix}").write_bytes(b"")
    (tmp_path / _native.STAMP_NAME).write_text(_native.source_digest(tmp_path) + "\n")
    before = list(sys.meta_path)
    _native.guard(tmp_path)
    assert sys.meta_path == before
