"""The fast path: every place the server reaches into uvicorn, in one module, typed against uvicorn.

Why: at 1,000 SSE subscribers the portable ASGI path (wake the subscriber's task, resume it, go
through uvicorn's `send`) cost about twice the server CPU per delivery, most of it Python around the
one `write` that matters (docs/benchmarks.md has the figures). An `Outlet` lets the hub write a
subscriber's pre-encoded bytes straight onto its socket when a tick arrives, in one synchronous
loop; an `Exchange` sends a short response (poll, long poll) in one write and lets a held request
wait for "tick or client gone" on one future. Both read uvicorn's httptools request cycle, which is
not a public API. Poll and long poll GETs, and WebSockets, on the fast path run on protocols of our
own (`server.transports.http_socket` on httptools' parser, `server.transports.ws_socket` on
websockets' sans-I/O layer), which `http_protocol` and `ws_protocol` fit into uvicorn. The range of
uvicorn that pyproject allows is the one tested here; `missing()` names anything this module touches
that the installed uvicorn lacks, and the server then runs the portable path instead, saying so at
start-up and in `/api/stats`.

The portable path stays correct on its own: every transport test also runs with this one off.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Protocol

from starlette.types import Send
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from server.gate import underlying
from server.wire import http_response

__all__ = ["HTTP_PROTOCOL", "WS_PROTOCOL", "Exchange", "FastPath", "Outlet", "http_protocol", "missing", "ws_protocol"]

HTTP_PROTOCOL = "httptools"
"""The HTTP protocol `pushpull-server` runs uvicorn with (named, not `auto`): the one this module reads."""
WS_PROTOCOL = "websockets-sansio"
"""uvicorn's WebSocket protocol for the portable path; the fast path brings its own (`ws_protocol`)."""

TOUCHED: dict[type, tuple[str, ...]] = {
    RequestResponseCycle: (
        "transport", "flow", "disconnected", "keep_alive", "response_started", "response_complete",
        "chunked_encoding", "waiting_for_100_continue", "message_event", "access_log", "access_logger",
        "default_headers", "on_response",
    ),
    FlowControl: ("write_paused",),
    HttpToolsProtocol: ("handle_websocket_upgrade", "ws_protocol_class", "server_state", "connection_made"),
    ServerState: ("connections", "default_headers"),
    asyncio.Event: ("_waiters",),
}  # fmt: skip
"""Every attribute read or written here, per class: what the contract test checks."""


def missing(touched: dict[type, tuple[str, ...]] = TOUCHED) -> list[str]:
    """`Class.attribute` for everything in `touched` that the installed libraries do not have.

    An instance attribute counts as there when a method of the class (or a base) uses its name."""
    gaps = []
    for cls, names in touched.items():
        used: set[str] = set()
        for klass in cls.__mro__:
            for member in vars(klass).values():
                code = getattr(member, "__code__", None)
                if code is not None:
                    used.update(code.co_names)
        gaps += [f"{cls.__name__}.{name}" for name in names if name not in used and not hasattr(cls, name)]
    return gaps


class Outlet(Protocol):
    """A stream's socket, written directly."""

    def ready(self) -> bool:
        """Open and not pushing back: a write now goes out without piling up."""
        ...

    def gone(self) -> bool:
        """The peer left or a close was sent: nothing more may be written."""
        ...

    def write(self, data: bytes) -> None: ...


def _closed(cycle: RequestResponseCycle) -> bool:
    """Has this request's client gone? uvicorn flags only a connection's newest request when the
    peer leaves; an older one (a stream with a request pipelined behind it) sees the transport
    closing instead, and is flagged here, so uvicorn neither writes to it nor reports it unanswered."""
    if cycle.disconnected:
        return True
    if cycle.transport.is_closing():
        cycle.disconnected = True
        return True
    return False


class _HttpStreamOutlet:
    """A chunked HTTP response (SSE) on httptools."""

    __slots__ = ("_cycle", "_transport")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self._transport: asyncio.Transport = underlying(cycle.transport)  # (ticks: past the gate)

    def ready(self) -> bool:
        # `disconnected` alone is not enough: uvicorn flags only the connection's newest request.
        cycle = self._cycle
        return not (cycle.flow.write_paused or cycle.disconnected or self._transport.is_closing())

    def gone(self) -> bool:
        return _closed(self._cycle)

    def write(self, data: bytes) -> None:
        self._transport.write(data)


class Exchange:
    """One request/response on a uvicorn httptools connection, for short answers (poll, long poll).

    Two shortcuts, both found with py-spy at 1,000 long-poll clients (docs/benchmarks.md): the whole
    response (status line, headers, body) goes out in one socket write instead of uvicorn's two,
    skipping its per-header checks (our headers are constants); and a held request can wait for
    "tick or client gone" on one future, with no watcher task, because uvicorn sets the request's
    message event when the peer disconnects.
    """

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    @property
    def disconnected(self) -> bool:
        return _closed(self._cycle)

    def disconnect_waiters(self) -> deque[asyncio.Future[Any]] | None:
        """Where a future goes to be resolved when the client leaves; call after `receive()`
        returned the request (the event is then clear). None if the event differs."""
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
        data = http_response(status, default_headers(cycle.default_headers), headers, body, not cycle.keep_alive)
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.transport.write(data)
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        return True


_defaults: tuple[object, bytes] = (None, b"")


def default_headers(defaults: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (server, date) as bytes, rebuilt when uvicorn swaps the list (each second)."""
    global _defaults
    if _defaults[0] is not defaults:
        _defaults = (defaults, b"".join(b"%s: %s\r\n" % pair for pair in defaults))
    return _defaults[1]


@dataclass(frozen=True, slots=True)
class FastPath:
    """Whether this server writes straight to uvicorn's sockets, and the way in when it does.

    Each accessor returns None when the fast path is off or the connection is not one it knows
    (another protocol): the caller then uses plain ASGI.
    """

    on: bool
    reason: str
    """Why it is off, or what it runs on."""

    @classmethod
    def detect(cls, wanted: bool = True) -> FastPath:
        """On, unless turned off or the installed uvicorn lacks something this module touches."""
        uvicorn = f"uvicorn {version('uvicorn')}"
        if not wanted:
            return cls(False, f"turned off; the portable ASGI path serves every stream ({uvicorn})")
        gaps = missing()
        if gaps:
            return cls(False, f"{uvicorn} lacks {', '.join(gaps)}; the portable ASGI path serves every stream")
        return cls(True, f"{uvicorn} with {HTTP_PROTOCOL}; polls, long polls and WebSockets on our own protocols")

    def exchange(self, send: Send) -> Exchange | None:
        """The httptools request behind `send`."""
        cycle = getattr(send, "__self__", None)
        if not self.on or type(cycle) is not RequestResponseCycle:
            return None
        return Exchange(cycle)

    def stream_outlet(self, send: Send) -> Outlet | None:
        """The socket of a streaming response already started with chunked encoding."""
        cycle = getattr(send, "__self__", None)
        if not self.on or type(cycle) is not RequestResponseCycle:
            return None
        if not (cycle.response_started and cycle.chunked_encoding is True):
            return None
        return _HttpStreamOutlet(cycle)


def ws_protocol(make: Callable[[set[Any]], asyncio.Protocol]) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's `ws=` takes, for our own WebSocket protocol: uvicorn's httptools protocol
    parses the upgrade request, then builds this with its config and state, feeds it the request
    and hands it the socket. `make` gets the server's set of open connections, which uvicorn asks
    to shut down (`shutdown()`) when it stops."""

    def build(*, config: object, server_state: ServerState, app_state: object, **_: object) -> asyncio.Protocol:
        return make(server_state.connections)

    return build


def http_protocol(
    make: Callable[[set[Any], Callable[[], bytes], Callable[[], asyncio.Protocol], float], asyncio.Protocol],
) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's `http=` takes, for our own protocol for poll and long poll GETs
    (`server.transports.http_socket`). `make` gets the server's open connections, its current
    default header lines (`server`, `date`), a way to make uvicorn's httptools protocol (to which
    it hands any connection that asks for something else), and uvicorn's keep-alive timeout."""

    def build(
        *, config: Any, server_state: ServerState, app_state: dict[str, Any], _loop: Any = None
    ) -> asyncio.Protocol:
        def uvicorn_protocol() -> asyncio.Protocol:
            return HttpToolsProtocol(config=config, server_state=server_state, app_state=app_state, _loop=_loop)

        def current_defaults() -> bytes:  # (uvicorn swaps the list every second, for the date)
            return default_headers(server_state.default_headers)

        return make(server_state.connections, current_defaults, uvicorn_protocol, config.timeout_keep_alive)

    return build
