"""Server WebSocket frames written straight to a connection's transport, and finding it.

A live message goes to every subscriber as the same bytes: a server frame is not masked
(RFC 6455 5.1), so one text frame, encoded once per message, is valid on every connection
that negotiated no extension. Writing those bytes to the transport, several frames in one
`write` per loop turn, skips the per-send path of ASGI (an awaited `send` per message and
per connection, a `websockets` frame object, a write system call each), which was where the
fan-out's time went.

`RawSocket` is that door when the server is uvicorn with its default `websockets` sans-I/O
protocol; `raw_socket` returns None otherwise (another server, permessage-deflate
negotiated, tests' fake sockets), and the connection then sends through ASGI as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

_OPEN = 1  # websockets.protocol.State.OPEN


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked text frame (FIN + opcode 1) carrying `text`."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65_536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


class FrameCache:
    """The frame of the message being delivered: the feed hands one message to every
    listener in turn, so one entry, compared by identity, encodes it once."""

    __slots__ = ("frame", "text")

    def __init__(self) -> None:
        self.text: str | None = None
        self.frame = b""

    def of(self, text: str) -> bytes:
        if text is not self.text:
            self.text, self.frame = text, text_frame(text)
        return self.frame


class RawSocket:
    """The transport of one uvicorn WebSocket connection, for frames the app built."""

    __slots__ = ("proto", "transport", "writable")

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.transport: asyncio.WriteTransport = proto.transport
        self.writable: asyncio.Event = proto.writable  # cleared while the transport is paused

    def open(self) -> bool:
        proto = self.proto
        return (
            not proto.close_sent
            and not proto.disconnected
            and proto.conn.state == _OPEN
            and not self.transport.is_closing()
        )

    def write(self, frames: list[bytes]) -> None:
        self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))


def _looks_like_uvicorn_sansio(obj: Any) -> bool:
    return (
        isinstance(getattr(obj, "writable", None), asyncio.Event)
        and hasattr(obj, "transport")
        and hasattr(obj, "close_sent")
        and hasattr(obj, "disconnected")
        and hasattr(getattr(obj, "conn", None), "extensions")
    )


def _find_protocol(send: Any, depth: int = 0) -> Any:
    """uvicorn's protocol behind an ASGI `send` (a bound method, perhaps wrapped in
    closures by Starlette's exception handling), or None."""
    if depth > 4 or send is None:
        return None
    owner = getattr(send, "__self__", None)
    if owner is not None and _looks_like_uvicorn_sansio(owner):
        return owner
    for cell in getattr(send, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(value):
            found = _find_protocol(value, depth + 1)
            if found is not None:
                return found
    return None


def raw_socket(websocket: Any) -> RawSocket | None:
    """The direct door to an accepted Starlette WebSocket, or None when it is not safe:
    not uvicorn's sans-I/O protocol, or an extension (compression) was negotiated."""
    proto = _find_protocol(getattr(websocket, "_send", None))
    if proto is None or proto.transport is None:
        return None
    if proto.conn.extensions:
        return None
    raw = RawSocket(proto)
    return raw if raw.open() else None
