"""Exact conversion between boundary Decimals and internal ints."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.values import (
    ConversionError,
    atom,
    from_atoms,
    from_units,
    require_decimal,
    to_atoms,
    to_units,
)


def test_to_units_counts_whole_units_exactly() -> None:
    assert to_units(Decimal("1.25"), Decimal("0.05")) == 25
    assert to_units(Decimal("0"), Decimal("0.01")) == 0
    assert to_units(Decimal("-3"), Decimal("1.5")) == -2


def test_to_units_rejects_a_value_that_is_not_a_multiple_of_the_unit() -> None:
    with pytest.raises(ConversionError):
        to_units(Decimal("1.26"), Decimal("0.05"))


def test_to_units_is_exact_for_values_beyond_decimal_context_precision() -> None:
    big = Decimal("123456789012345678901234567890.01")
    assert to_units(big, Decimal("0.01")) == 12345678901234567890123456789001


def test_floats_are_refused_with_type_error() -> None:
    with pytest.raises(TypeError):
        to_units(1.5, Decimal("0.5"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_units(Decimal("1.5"), 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        require_decimal(0.1)
    with pytest.raises(TypeError):
        require_decimal(True)


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ConversionError):
        to_units(Decimal("NaN"), Decimal("0.01"))
    with pytest.raises(ConversionError):
        to_units(Decimal("Infinity"), Decimal("0.01"))
    with pytest.raises(ConversionError):
        require_decimal("nan")


def test_require_decimal_accepts_exact_inputs() -> None:
    assert require_decimal("1.10") == Decimal("1.10")
    assert require_decimal(3) == Decimal(3)


def test_atoms_follow_asset_decimals() -> None:
    assert atom(2) == Decimal("0.01")
    assert to_atoms(Decimal("12.34"), 2) == 1234
    assert from_atoms(1234, 2) == Decimal("12.34")
    assert from_units(3, Decimal("0.5")) == Decimal("1.5")
    with pytest.raises(ConversionError):
        to_atoms(Decimal("0.001"), 2)
