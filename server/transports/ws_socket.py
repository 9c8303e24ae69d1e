"""`WS /ws` on the fast path: our own protocol on the socket, built on websockets' sans-I/O layer.

Why: through ASGI, each open WebSocket held uvicorn's protocol object (an asyncio queue and two
events), the handshake's request kept alive by the sans-I/O parser, a scope, a task and its
frames: most of its memory, about twice Nchan's per connection (docs/benchmarks.md). Here a
connection is this object, one frame parser (`websockets.protocol.Protocol`, public API) and its
`WsConnection`, with no task of its own: ops are answered as their frames arrive, ticks are
written by the hub (`server.stream`), and a task exists only while a stalled client catches up.
The handshake is checked by websockets' own `ServerProtocol`, which is dropped once it is done.

uvicorn hands the socket over after it has parsed the upgrade request (`server.fast_path` says
how); this module imports nothing of uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

from server.fast_path import Outlet
from server.gate import underlying
from server.rawhttp import error_body, with_length
from server.runtime import Runtime
from server.schema import MAX_MESSAGE_BYTES
from server.transports.ws import CLOSE_WAIT, KEEPALIVE, PATH, SHUTDOWN_CLOSE_WAIT, SHUTTING_DOWN, WsConnection
from server.wire import http_response, ws_text_frame

__all__ = ["WebSocketSocket"]

logger = logging.getLogger("pushpull.ws")


def _refusal(status: int, detail: str) -> bytes:
    """A complete HTTP refusal of the upgrade, with a JSON body like the API's other errors."""
    body = error_body(detail)
    return http_response(status, b"", with_length(status, body, ()), body, close=True)


class WebSocketSocket(asyncio.Protocol):
    """One client's socket: handshake, frames, back-pressure, keepalive, and the close handshake.

    It is its session's `WsLink` and, once open, its `Outlet` too (the hub writes ticks here)."""

    __slots__ = (
        "_drop",
        "_ping_due",
        "_pong_wait",
        "_resumed",
        "binary",
        "conn",
        "connections",
        "ending",
        "fragments",
        "outlet",
        "runtime",
        "session",
        "transport",
        "writable",
    )

    def __init__(self, runtime: Runtime, connections: set[Any]) -> None:
        self.runtime = runtime
        self.connections = connections
        """The server's open connections, which it asks to shut down when it stops."""
        self.transport: asyncio.Transport | None = None
        self.conn: Protocol | None = None
        """The frame parser, once the handshake is done."""
        self.session: WsConnection | None = None
        self.outlet: Outlet | None = None
        self.writable = True
        self._resumed: asyncio.Future[None] | None = None
        self._drop: asyncio.TimerHandle | None = None
        """Aborts the socket if its closing handshake takes longer than CLOSE_WAIT."""
        self.ending = False
        self.fragments: list[bytes] = []
        """The message being received, frame by frame."""
        self.binary = False
        self._ping_due = 0.0
        self._pong_wait = 0.0
        """When the ping in flight must be answered by (0: none in flight)."""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is one, but not a subclass)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.conn is None:
            self.handshake(data)
            return
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self.on_frame(event)
        self.flush()

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.receive_eof()
            self.flush()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.ending = True
        if self._drop is not None:
            self._drop.cancel()
            self._drop = None
        if self.session is not None:
            self.session.closed()
        self._release()

    def pause_writing(self) -> None:
        """The client stopped reading: stop reading its ops too, until it drains."""
        self.writable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writable = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self._release()

    def _release(self) -> None:
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    # The opening handshake

    def handshake(self, data: bytes) -> None:
        """Check the upgrade request, refuse it or accept it; then frames follow."""
        assert self.transport is not None
        shake = ServerProtocol(max_size=MAX_MESSAGE_BYTES)
        shake.receive_data(data)
        requests = [event for event in shake.events_received() if isinstance(event, Request)]
        if not requests:
            self.transport.write(b"".join(shake.data_to_send()) or _refusal(400, "bad upgrade"))
            self.transport.close()
            return
        request = requests[0]
        if request.path.partition("?")[0] != PATH:
            self.transport.write(_refusal(404, "Not Found"))
            self.transport.close()
            return
        stats = self.runtime.stats.ws
        stats.requests += 1
        response = shake.accept(request)
        shake.send_response(response)
        self.transport.write(b"".join(shake.data_to_send()))
        if response.status_code != 101:
            self.transport.close()
            return
        self.conn = Protocol(Side.SERVER, max_size=MAX_MESSAGE_BYTES)
        self.outlet = self
        self._ping_due = asyncio.get_running_loop().time() + KEEPALIVE
        self.session = WsConnection(self.runtime, self)
        self.session.opened()

    # Frames

    def on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self.binary = opcode is Opcode.BINARY
            self.fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self.fragments.append(bytes(frame.data))  # (the parser refuses a CONT with nothing to continue)
        elif opcode is Opcode.PONG:
            self._pong_wait = 0.0
            return
        else:
            return  # PING is answered, and CLOSE echoed, by the frame parser itself (see `flush`)
        if frame.fin:
            parts, self.fragments = self.fragments, []
            self.on_message(None if self.binary else parts)

    def on_message(self, parts: list[bytes] | None) -> None:
        """A whole message (None: a binary one, which the session answers with an error)."""
        assert self.session is not None and self.conn is not None
        text = None
        if parts is not None:
            try:
                text = b"".join(parts).decode()
            except UnicodeDecodeError:
                self.conn.fail(1007, "invalid UTF-8")
                return
        if self.ending or self.conn.state is not State.OPEN:
            return
        replies = self.session.receive(text)
        if replies:
            self.write_texts(replies)

    def flush(self) -> None:
        """Write what the frame parser has to say (pongs, close frames); close the socket after
        its end of the closing handshake (an empty chunk means: close)."""
        conn, transport = self.conn, self.transport
        if conn is None or transport is None:
            return
        for chunk in conn.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                transport.close()
        if conn.state is State.CLOSED or conn.close_expected():
            self.begin_closing()

    def begin_closing(self) -> None:
        """The closing handshake has begun: the session is over, and the socket goes within
        CLOSE_WAIT even if the client never reads again (`close()` would wait for its full buffer
        to drain: it is aborted instead)."""
        if self.ending:
            return
        self.ending = True
        if self.session is not None:
            self.session.closed()  # it no longer counts as open while its close handshake finishes
        self._release()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()  # (paused while it did not read: its close reply must get in)
            self._drop = asyncio.get_running_loop().call_later(CLOSE_WAIT, transport.abort)

    # As the session's link and outlet

    def ready(self) -> bool:
        return self.writable and not self.gone()

    def gone(self) -> bool:
        return self.ending or self.transport is None or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        underlying(self.transport).write(data)  # (ticks, written only while it reads: past the gate)

    def write_texts(self, texts: list[str]) -> None:
        if not self.gone():
            self.write(b"".join([ws_text_frame(text.encode()) for text in texts]))

    def pushing_back(self) -> bool:
        return not self.writable and not self.gone()

    async def send_texts(self, texts: list[str]) -> None:
        """Write now; if the socket then pushes back, wait until it drains (or is gone)."""
        self.write_texts(texts)
        if not self.writable and not self.gone():
            self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed

    def end(self, code: int, reason: str) -> None:
        if self.ending or self.conn is None or self.transport is None:
            return
        self.conn.send_close(code, reason)
        self.flush()  # the closing handshake begins

    def keepalive(self, now: float) -> None:
        """Ping every KEEPALIVE s; drop a client that has not answered the last ping within KEEPALIVE
        s. Not while it pushes back: its pong may sit unread behind its ops (reading is paused), and
        a client that stopped reading is the lag limit's to judge."""
        if self.conn is None or self.gone() or not self.writable:
            return
        if self._pong_wait and now > self._pong_wait:
            logger.info("a WebSocket client did not answer a ping within %g s; dropping it", KEEPALIVE)
            assert self.transport is not None
            self.transport.abort()
        elif now >= self._ping_due:
            self._ping_due = now + KEEPALIVE
            self._pong_wait = now + KEEPALIVE
            self.conn.send_ping(b"")
            self.flush()

    def shutdown(self) -> None:
        """The server is stopping (asked by uvicorn for each open connection): close with 1012,
        and give the client `SHUTDOWN_CLOSE_WAIT` s, not CLOSE_WAIT, to answer before the socket
        is aborted (one that stopped reading never answers, and the server waits for it)."""
        if self.conn is None:
            if self.transport is not None:
                self.transport.close()
            return
        self.end(*SHUTTING_DOWN)  # (done already if the hub's close reached the session first)
        if self._drop is not None and self.transport is not None:
            self._drop.cancel()
            self._drop = asyncio.get_running_loop().call_later(SHUTDOWN_CLOSE_WAIT, self.transport.abort)
