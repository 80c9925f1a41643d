"""Statements with their parameters written in as SQL literals, for one-round-trip scripts.

asyncpg sends each parameterised statement in its own round trip (and a transaction adds
BEGIN and COMMIT). A projector's batch is a few writes and a position update; sent as one
simple-query script they run as one implicit transaction in one round trip
(`infra.readmodels.DeferredWrites`). This module turns `(query, args)` into such a statement.

A literal stands exactly where the parameter stood, and PostgreSQL resolves an untyped
quoted literal from its context the way it resolves an untyped parameter, so the statements
keep their meaning: text is quoted (`standard_conforming_strings` is on for these sessions,
so only the quote character is special), arrays are array literals, numbers and times carry
their type. A NUL character cannot be sent in a query at all, so it is refused here, as the
server refuses it in a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

_PARAMETER = re.compile(r"\$(\d+)")


def inline(query: str, args: Sequence[Any]) -> str:
    """`query` with each `$n` replaced by the literal of `args[n - 1]`.

    Only for the project's own statements: `$n` must not occur inside a quoted string or a
    dollar-quoted body of `query` (none of ours does)."""
    literals = [literal(a) for a in args]

    def sub(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if not 1 <= n <= len(literals):
            raise ValueError(f"statement refers to ${n} but {len(literals)} values were given")
        return literals[n - 1]

    return _PARAMETER.sub(sub, query)


def quoted(text: str) -> str:
    """A SQL string literal (standard_conforming_strings on)."""
    if "\x00" in text:
        raise ValueError("text holds a NUL character, which PostgreSQL cannot store")
    return "'" + text.replace("'", "''") + "'"


def literal(value: Any) -> str:
    """The SQL literal of one parameter value."""
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is str:
        return quoted(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value) if value >= 0 else f"({value})"  # `x-$1` must not become a comment
    if kind is Decimal:
        return quoted(str(value)) + "::numeric"
    if kind is datetime:
        return quoted(_timestamp(value)) + "::timestamptz"
    if kind is list or kind is tuple:
        return quoted("{" + ",".join(_element(v) for v in value) + "}")
    if kind is date:
        return quoted(value.isoformat()) + "::date"
    if kind is float:
        return quoted(repr(value)) + "::float8"
    if isinstance(value, str):  # a StrEnum member: its text, as asyncpg sends it
        return quoted(str.__str__(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return literal(int(value))
    raise TypeError(f"no SQL literal for a {kind.__name__} parameter")


def _timestamp(value: datetime) -> str:
    # asyncpg sends a naive datetime to a timestamptz as UTC; so does this.
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _element(value: Any) -> str:
    """One element of an array literal: quoted with backslash escapes, or NULL."""
    if value is None:
        return "NULL"
    kind = type(value)
    text: str
    if kind is str:
        text = value
    elif kind is bool:
        text = "t" if value else "f"
    elif kind is int or kind is Decimal:
        text = str(value)
    elif kind is datetime:
        text = _timestamp(value)
    elif isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, int):
        text = str(int(value))
    else:
        raise TypeError(f"no SQL array element for a {kind.__name__} value")
    if "\x00" in text:
        raise ValueError("text holds a NUL character, which PostgreSQL cannot store")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
