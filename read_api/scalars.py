"""Scalars that keep money exact and big integers whole on the wire.

``Decimal`` is a plain decimal string (never a binary float, never exponent notation) and
refuses anything but a string on input; ``BigInt`` (log positions, nanosecond times) is a
decimal string too, since JavaScript numbers lose integers above 2^53.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

_DECIMAL = re.compile(r"^-?[0-9]{1,24}(\.[0-9]{1,18})?$")


def _serialize_decimal(value: Decimal) -> str:
    text = format(value, "f")
    return text


def _parse_decimal(value: Any) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise ValueError('a Decimal is a decimal string such as "30000.50"')
    return Decimal(value)


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a BigInt is an integer or a decimal integer string")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value):
        return int(value)
    raise ValueError("a BigInt is an integer or a decimal integer string")


BigInt = NewType("BigInt", int)

SCALARS: dict[object, ScalarDefinition] = {
    Decimal: strawberry.scalar(
        name="Decimal",
        description='An exact decimal as a string, e.g. "30000.50"',
        serialize=_serialize_decimal,
        parse_value=_parse_decimal,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A 64-bit integer as a decimal string (positions, nanosecond times)",
        serialize=str,
        parse_value=_parse_bigint,
    ),
}
