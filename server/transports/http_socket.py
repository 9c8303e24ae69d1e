"""Poll and long poll on the fast path: our own HTTP/1.1 on the socket, for those GETs only.

Why: through ASGI every request costs uvicorn's Python per request (parser callbacks, a scope, a
request cycle, a task) and ours on top; at 1,000 long-poll clients (10,000 requests/s) that kept
the server at ~47 us of CPU per request against Nchan's 13 (docs/benchmarks.md). Here a
connection whose requests are `GET /api/longpoll/...` or `GET /api/price/...` is answered by this
object itself: the head is parsed by httptools (its public parser), the answer comes from the
same functions the ASGI path calls (`poll.answer`, `longpoll.begin` / `after_hold`), and a held
long poll is a hub listener and a timer, with no task. The first request that is anything else
(a POST, the docs, a malformed head) hands the connection, with every byte not yet answered, to
uvicorn's own protocol, the way uvicorn hands a WebSocket upgrade to ours.

This module imports nothing of uvicorn: `server.fast_path.http_protocol` fits it in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

import httptools

from server.hub import Entry, Listener, Subscription
from server.rawhttp import Answer, HttpError, error_answer, error_body, with_length
from server.runtime import Runtime
from server.stats import TransportStats
from server.transports import longpoll, poll
from server.wire import http_response

__all__ = ["HotHttpSocket"]

logger = logging.getLogger("pushpull.http")

HOT = tuple(b"GET " + prefix.encode() for prefix in (longpoll.PREFIX, poll.PREFIX))
"""Request lines this protocol answers; anything else goes to uvicorn."""
MAX_HEAD = 16 * 1024
"""A head longer than this goes to uvicorn; while a poll is held, reading stops past it."""


class _Held(Listener):
    """The hub's handle on a held long poll: any tick (or shutdown) ends the hold, just after
    the delivery under way, so that a batch published at once is answered at once."""

    __slots__ = ("due", "socket")

    def __init__(self, socket: HotHttpSocket) -> None:
        super().__init__()
        self.socket = socket
        self.due = False

    def on_entry(self, entry: Entry) -> None:
        self.wake()

    def wake(self) -> None:
        if not self.due:
            self.due = True
            asyncio.get_running_loop().call_soon(self.socket.end_hold, self)


class HotHttpSocket(asyncio.Protocol):
    """One client connection, for as long as it asks only for prices and long polls."""

    __slots__ = (
        "connections",
        "default_headers",
        "hand_over_to",
        "headers",
        "held",
        "hold",
        "hold_timer",
        "idle_since",
        "idle_timer",
        "keep_alive",
        "keep_alive_s",
        "parser",
        "pending",
        "reading_paused",
        "runtime",
        "subscription",
        "transport",
        "url",
        "writable",
    )

    def __init__(
        self,
        runtime: Runtime,
        connections: set[Any],
        default_headers: Callable[[], bytes],
        hand_over_to: Callable[[], asyncio.Protocol],
        keep_alive_s: float,
    ) -> None:
        self.runtime = runtime
        self.connections = connections
        """The server's open connections, which it asks to shut down when it stops."""
        self.default_headers = default_headers
        """The server's `server` and `date` header lines, current."""
        self.hand_over_to = hand_over_to
        """Makes uvicorn's protocol, for a request this one does not answer."""
        self.keep_alive_s = keep_alive_s
        """Seconds a connection may sit idle after an answer (uvicorn's `timeout_keep_alive`)."""
        self.reading_paused = False
        self.idle_since = 0.0
        """When the last answer went out, while nothing has come since (0: something has)."""
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()
        """Bytes received and not yet answered: pipelined requests wait here."""
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.hold: longpoll.Hold | None = None
        self.held: _Held | None = None
        self.subscription: Subscription | None = None
        self.hold_timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.writable = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.idle_since = 0.0  # not idle: a request is coming
        self.pending += data
        if self.hold is not None and len(self.pending) > MAX_HEAD:
            self.pause_reading()  # what it sends while it waits queues in its own socket, not here
        self.serve_pending()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.drop_hold()
        self.transport = None
        self.parser = None  # (it refers back to this object: let both go now, not at the next collection)

    def pause_writing(self) -> None:
        """The client is not reading its answers: stop reading its requests too, until it does."""
        self.writable = False
        self.pause_reading()

    def resume_writing(self) -> None:
        self.writable = True
        self.resume_reading()
        self.serve_pending()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """The server is stopping: an idle connection closes now; a held long poll is answered
        by the hub's close (503 with `retry-after`), then the connection closes."""
        self.keep_alive = False
        if self.hold is None and self.transport is not None:
            self.transport.close()

    # Requests

    def serve_pending(self) -> None:
        """Answer complete requests in order, while nothing is held and the client reads."""
        while self.hold is None and self.writable and self.keep_alive and self.pending and self.transport is not None:
            pending = self.pending
            if not pending.startswith(HOT):
                start = bytes(pending[:32])
                if any(len(start) < len(prefix) and prefix.startswith(start) for prefix in HOT):
                    return  # too short to tell yet
                self.hand_over()
                return
            end = pending.find(b"\r\n\r\n")
            if end < 0:
                if len(pending) > MAX_HEAD:
                    self.hand_over()
                return
            head = bytes(pending[: end + 4])
            lowered = head.lower()
            if b"\ncontent-length:" in lowered or b"\ntransfer-encoding:" in lowered or b"\nupgrade:" in lowered:
                self.hand_over()  # a GET with a body, or an upgrade: uvicorn's business
                return
            self.url, self.headers = b"", []
            assert self.parser is not None
            try:
                self.parser.feed_data(head)
            except httptools.HttpParserError:
                self.hand_over()
                return
            del pending[: end + 4]
            http_1_1 = self.parser.get_http_version() == "1.1"  # uvicorn closes every HTTP/1.0 connection
            self.keep_alive = self.keep_alive and http_1_1 and self.parser.should_keep_alive()
            try:
                self.answer()
            except Exception:  # a bug: answer as the ASGI path would, and close
                logger.exception("answering %r failed", self.url)
                self.keep_alive = False
                self.respond((500, [], error_body("Internal Server Error")), self.runtime.stats.poll)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def answer(self) -> None:
        runtime = self.runtime
        url = httptools.parse_url(self.url)  # (as uvicorn does: a `#fragment` is not the query)
        path, query = url.path or b"", url.query or b""
        text = path.decode("latin-1")
        path_text = unquote(text) if "%" in text else text
        scope = {"path": path_text, "query_string": query, "headers": self.headers}
        is_poll = path_text.startswith(poll.PREFIX)
        try:
            if is_poll:
                outcome: Answer | longpoll.Hold = poll.answer(runtime, scope)
            else:
                outcome = longpoll.begin(runtime, scope)
        except HttpError as exc:
            outcome = error_answer(exc, runtime.cors.headers(scope))
        if isinstance(outcome, longpoll.Hold):
            self.start_hold(outcome)
        else:
            self.respond(outcome, runtime.stats.poll if is_poll else runtime.stats.longpoll)

    def respond(self, answer: Answer, stats: TransportStats) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        status, headers, body = answer
        headers = with_length(status, body, headers)
        close = not self.keep_alive or (b"connection", b"close") in headers
        transport.write(http_response(status, self.default_headers(), headers, body, close))
        stats.direct_writes += 1
        if close:
            self.keep_alive = False
            transport.close()
            return
        loop = asyncio.get_running_loop()
        self.idle_since = loop.time()
        if self.idle_timer is None:  # (one timer per connection, re-armed when it fires, not one per answer)
            self.idle_timer = loop.call_later(self.keep_alive_s, self.close_idle)

    def close_idle(self) -> None:
        """Close a connection that sent nothing for `keep_alive_s` after its last answer."""
        self.idle_timer = None
        if self.transport is None or self.hold is not None or not self.idle_since:
            return  # gone, held (its answer re-arms this), or a request is on its way
        loop = asyncio.get_running_loop()
        left = self.idle_since + self.keep_alive_s - loop.time()
        if left > 0:
            self.idle_timer = loop.call_later(left, self.close_idle)
        else:
            self.transport.close()

    # A held long poll

    def start_hold(self, hold: longpoll.Hold) -> None:
        self.hold = hold
        self.held = _Held(self)
        self.subscription = self.runtime.hub.subscribe(hold.topic.symbol, self.held)
        self.hold_timer = asyncio.get_running_loop().call_later(hold.timeout, self.end_hold)
        self.runtime.stats.longpoll.open_connections += 1

    def drop_hold(self) -> longpoll.Hold | None:
        """Stop holding (the client left, or the hold ended); the hold, if there was one."""
        hold, self.hold = self.hold, None
        if hold is None:
            return None
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        if self.subscription is not None:
            self.subscription.cancel()
            self.subscription = None
        self.held = None
        self.runtime.stats.longpoll.open_connections -= 1
        return hold

    def end_hold(self, held: _Held | None = None) -> None:
        """A tick, the timeout or shutdown: answer, then go on with what the client sent since.
        `held`: the hold a tick ended (a stale one, already answered, is ignored)."""
        if held is not None and held is not self.held:
            return
        hold = self.drop_hold()
        if hold is None or self.transport is None:
            return
        if self.runtime.hub.closing:
            self.keep_alive = False
        self.resume_reading()
        try:
            answer = longpoll.after_hold(self.runtime, hold)
        except Exception:  # a bug: answer as the ASGI path would, and close
            logger.exception("answering a held long poll failed")
            self.keep_alive = False
            answer = (500, [], error_body("Internal Server Error"))
        self.respond(answer, self.runtime.stats.longpoll)
        self.serve_pending()

    # Not ours

    def hand_over(self) -> None:
        """Give the connection, and every byte not yet answered, to uvicorn's protocol."""
        transport = self.transport
        if transport is None:
            return
        self.connections.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.transport = None
        self.parser = None  # (it refers back to this object: let both go now, not at the next collection)
        data, self.pending = bytes(self.pending), bytearray()
        self.resume_reading()  # (uvicorn's protocol does its own flow control)
        protocol = self.hand_over_to()
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        if data:
            protocol.data_received(data)
