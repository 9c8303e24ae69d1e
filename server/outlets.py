"""Outlets: write a subscriber's pre-encoded bytes straight onto its socket, with no task switch.

Why: at 1,000 SSE subscribers the ASGI path (wake the subscriber's task, resume it, go through
uvicorn's `send`) cost ~24 us of server CPU per delivery, about half of it Python around the one
`write` that matters. An outlet lets the hub write every subscriber's bytes in one synchronous loop
when a tick arrives, the way event-driven servers do. The bytes are shared: the SSE chunk (with its
chunked-encoding frame) and the WebSocket frame are encoded once per tick.

Outlets reach into uvicorn's protocol objects (httptools HTTP and sans-I/O websockets, the ones
`uvicorn[standard]` runs). `http_outlet` / `ws_outlet` return None for anything else, and the
transports then fall back to the portable ASGI path, which is slower but equivalent.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from starlette.types import Send

__all__ = ["Outlet", "chunk", "http_outlet", "ws_frame", "ws_outlet"]


class Outlet(Protocol):
    def ready(self) -> bool:
        """Open and not pushing back: a write now goes out without piling up."""
        ...

    def gone(self) -> bool:
        """The peer left or a close was sent: nothing more may be written."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait until the socket takes data again (or is gone)."""
        ...


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-encoding chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def ws_frame(text: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (server to client): the same bytes for every client."""
    size = len(text)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + text


class _HttpToolsOutlet:
    __slots__ = ("_cycle", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport: asyncio.WriteTransport = cycle.transport

    def ready(self) -> bool:
        return not (self._cycle.flow.write_paused or self._cycle.disconnected)

    def gone(self) -> bool:
        return bool(self._cycle.disconnected or self._transport.is_closing())

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()


class _SansIOWebSocketOutlet:
    __slots__ = ("_open", "_protocol", "_transport")

    def __init__(self, protocol: Any, open_state: Any) -> None:
        self._protocol = protocol
        self._transport: asyncio.WriteTransport = protocol.transport
        self._open = open_state

    def ready(self) -> bool:
        return self._protocol.writable.is_set() and not self.gone()

    def gone(self) -> bool:
        protocol = self._protocol
        return bool(protocol.close_sent or protocol.disconnected or protocol.conn.state is not self._open)

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        await self._protocol.writable.wait()


def http_outlet(send: Send) -> Outlet | None:
    """An outlet for a streaming response already started with chunked encoding, if possible."""
    cycle = getattr(send, "__self__", None)
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    except ImportError:  # pragma: no cover - httptools missing
        return None
    if not isinstance(cycle, RequestResponseCycle):
        return None
    if not (cycle.response_started and cycle.chunked_encoding is True and hasattr(cycle.flow, "write_paused")):
        return None
    return _HttpToolsOutlet(cycle)


def ws_outlet(send: Send) -> Outlet | None:
    """An outlet for an accepted WebSocket without per-message compression, if possible."""
    protocol = getattr(send, "__self__", None)
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(protocol, WebSocketsSansIOProtocol) or not protocol.handshake_complete:
        return None
    if getattr(protocol.conn, "extensions", None):  # a negotiated extension (compression) changes frames
        return None
    if not isinstance(getattr(protocol, "writable", None), asyncio.Event):
        return None
    # The handshake's request and response (headers and all, ~2 KB) are only read while
    # accepting; uvicorn keeps them for the connection's life. Let them go.
    for name in ("request", "response"):
        if hasattr(protocol, name):
            setattr(protocol, name, None)
    return _SansIOWebSocketOutlet(protocol, State.OPEN)
