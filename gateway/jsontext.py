"""JSON text on the hot paths (command outcomes, live messages) written by orjson.

orjson writes exactly what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``
writes, several times faster; what it refuses (integers beyond 64 bits, non-string keys) is
written by the standard library instead. Our bodies carry no binary floats (docs/commands.md),
so orjson's NaN-as-null never arises where Starlette's `allow_nan=False` would have raised.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode()


def loads(text: bytes | str) -> Any:
    """`json.loads`, by orjson when it can (it refuses integers beyond 64 bits, lone
    surrogates and nesting deeper than 1,024, which the standard library then reads)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


class FastJSONResponse(JSONResponse):
    """A JSONResponse with the same bytes, rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return dumps_bytes(content)
