"""Request bodies are checked before anything parses them: size first, then strict JSON.

Oversized bodies (by Content-Length or by what actually arrives), malformed JSON, binary
floats and NaN/Infinity are refused here with the error shape, so nothing of them reaches
a route, let alone the core. Decimals travel as strings (docs/commands.md).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_response

DEFAULT_MAX_BODY = 64 * 1024


class _Float:
    """A JSON number with a fraction or exponent: remembered so its field can be named."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Refused(ValueError):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def _constant(text: str) -> Any:
    raise _Refused("float_not_allowed", f"{text} is not a number JSON allows")


def _find_float(value: Any, path: str) -> str | None:
    if isinstance(value, _Float):
        return path or "(body)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_float(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_float(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


PARSED_BODY = "tradecore.parsed_body"
"""The scope key under which BodyGuard leaves the JSON it checked (what `json.loads` gives)."""


def _has_float(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return kind is float
    for item in items:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _has_float(item)):
            return True
    return False


def check_json(body: bytes) -> Any:
    """The parsed ``body``; raise _Refused unless it is JSON without floats (integers are
    fine). orjson parses what it can (most bodies, several times faster); anything it refuses
    or any float goes through the standard library, which names the refusal."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # the standard library below gives the precise refusal (or parses big integers)
    else:
        try:
            plain = not _has_float(parsed)
        except RecursionError:  # deeper than Python recurses: the standard library decides
            plain = False
        if plain:
            return parsed
    floats: list[_Float] = []

    def on_float(text: str) -> _Float:
        floats.append(number := _Float(text))
        return number

    try:
        parsed = json.loads(body, parse_float=on_float, parse_constant=_constant)
    except _Refused:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Refused("malformed_json", f"the body is not valid JSON: {exc}") from None
    if floats:  # only then is the walk needed, to name the field
        field = _find_float(parsed, "")
        raise _Refused(
            "float_not_allowed", "binary floats are refused: send a decimal string", field
        )
    return parsed


def _is_json(headers: dict[bytes, bytes]) -> bool:
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return kind == b"" or kind == b"application/json" or kind.endswith(b"+json")


class BodyGuard:
    """ASGI middleware: bounded, strictly checked bodies; replays the body to the app."""

    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    def _too_large(self) -> JSONResponse:
        limit = self.max_body
        message = f"the body is larger than {limit} bytes"
        return error_response(413, "payload_too_large", message, {"limit": limit})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = self.max_body + 1
            if size > self.max_body:
                await self._too_large()(scope, receive, send)
                return
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(headers):
            try:
                scope[PARSED_BODY] = check_json(body)
            except _Refused as exc:
                details = {"field": exc.field, "reason": exc.code} if exc.field else {}
                text = f"{exc.field}: {exc}" if exc.field else str(exc)
                await error_response(400, exc.code, text, details)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
