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
import http
import logging
from collections import deque
from typing import Any, Protocol

from starlette.types import Send

__all__ = ["Exchange", "Outlet", "chunk", "http_exchange", "http_outlet", "ws_frame", "ws_outlet"]


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


try:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as _HttpToolsCycle
except ImportError:  # pragma: no cover - httptools missing
    _HttpToolsCycle = None  # type: ignore[assignment,misc]


def _closed(cycle: Any) -> bool:
    """Has this request's client gone? uvicorn flags only a connection's newest request when the
    peer leaves; an older one (a stream with a request pipelined behind it) sees the transport
    closing instead, and is flagged here, so uvicorn neither writes to it nor reports it unanswered."""
    if cycle.disconnected:
        return True
    if cycle.transport.is_closing():
        cycle.disconnected = True
        return True
    return False


class _HttpToolsOutlet:
    __slots__ = ("_cycle", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport: asyncio.WriteTransport = cycle.transport

    def ready(self) -> bool:
        # `disconnected` alone is not enough: uvicorn flags only the connection's newest request,
        # so a stream with a pipelined request behind it never sees it set.
        cycle = self._cycle
        return not (cycle.flow.write_paused or cycle.disconnected or self._transport.is_closing())

    def gone(self) -> bool:
        return _closed(self._cycle)

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
        if protocol.close_sent or protocol.disconnected or self._transport.is_closing():
            return True
        return bool(protocol.conn.state is not self._open)

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        await self._protocol.writable.wait()


class Exchange:
    """One request/response on a uvicorn httptools connection, for short answers (poll, long poll).

    Two shortcuts, both measured with py-spy at 1,000 long-poll clients (~10,000 requests/s):
    the whole response (status line, headers, body) goes out in one socket write instead of
    uvicorn's two, skipping its per-header checks (our headers are constants); and a held
    request can wait for "tick or client gone" on one future, with no watcher task, because
    uvicorn sets the request's message event when the peer disconnects.
    """

    __slots__ = ("_cycle",)

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle

    @property
    def disconnected(self) -> bool:
        return _closed(self._cycle)

    def disconnect_waiters(self) -> deque[asyncio.Future[Any]] | None:
        """Where a future goes to be resolved when the client leaves; call after `receive()`
        returned the request (the event is then clear). None if uvicorn's event differs."""
        waiters = getattr(self._cycle.message_event, "_waiters", None)
        return waiters if isinstance(waiters, deque) else None

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        """Send a complete response in one write, finishing the request as uvicorn's `send` does;
        False if it can't (something sent already, pushing back, or an access line to log)."""
        cycle = self._cycle
        if cycle.response_started or cycle.flow.write_paused or _closed(cycle):
            return False
        if cycle.access_log and cycle.access_logger.isEnabledFor(logging.INFO):
            return False  # let uvicorn write its access log line (`--access-log`)
        if (b"connection", b"close") in headers:
            cycle.keep_alive = False  # as uvicorn's `send` does: close once this is written
        parts = [_status_line(status), _default_headers(cycle.default_headers)]
        parts += [b"%s: %s\r\n" % pair for pair in headers]
        if not cycle.keep_alive and (b"connection", b"close") not in headers:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", body]
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        return True


_status_lines: dict[int, bytes] = {}
_defaults: tuple[object, bytes] = (None, b"")


def _status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        line = _status_lines[status] = b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())
    return line


def _default_headers(defaults: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (server, date) as bytes, rebuilt when uvicorn swaps the list (each second)."""
    global _defaults
    if _defaults[0] is not defaults:
        _defaults = (defaults, b"".join(b"%s: %s\r\n" % pair for pair in defaults))
    return _defaults[1]


def http_exchange(send: Send) -> Exchange | None:
    """The uvicorn request behind `send`, if it is the httptools one with the fields we use."""
    cycle = getattr(send, "__self__", None)
    if _HttpToolsCycle is None or not isinstance(cycle, _HttpToolsCycle):
        return None
    for name in ("response_started", "response_complete", "disconnected", "keep_alive", "access_log"):
        if not isinstance(getattr(cycle, name, None), bool):
            return None
    if not (isinstance(getattr(cycle, "message_event", None), asyncio.Event) and hasattr(cycle, "on_response")):
        return None
    return Exchange(cycle)


def http_outlet(send: Send) -> Outlet | None:
    """An outlet for a streaming response already started with chunked encoding, if possible."""
    cycle = getattr(send, "__self__", None)
    if _HttpToolsCycle is None or not isinstance(cycle, _HttpToolsCycle):
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
