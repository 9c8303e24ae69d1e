"""The gate: every connection's first stop. It counts the connection, bounds what one client may
cost the server, and refuses cleanly when the server is full.

Why a layer of its own: uvicorn's httptools protocol (and httptools itself) puts no bound on a
request line or a header, no deadline on a head or a body, parses every request pipelined in one
read, and queues whatever a peer does not read (WebSocket pongs included). One client without a
token could grow the server's memory without limit, stall its loop for seconds parsing a 143 MB
header, or hold thousands of idle sockets until the process ran out of descriptors and every new
client, `/healthz` included, got a reset. The gate sits between the socket and whichever protocol
serves the connection (ours for polls, uvicorn's for the rest, then a WebSocket protocol after an
upgrade): to the socket it is the protocol, to that protocol it is the transport. It finds each
request's head and body by itself (a head ends at the first blank line; a body is Content-Length
bytes, or chunks up to the last), so it can refuse before anything is parsed, and it hands the protocol one request at a
time, so a protocol that stops reading (one request at a time, as uvicorn's does) holds at most
what the gate holds, which is bounded.

What a client gets at each limit (README, "Limits and hostile input"):
- the server full (`--max-connections`, counted over every open socket): HTTP 503 with
  `retry-after`, or for a WebSocket handshake a close with 1013 (try again later);
- a request line past `--max-request-line`: 414; a head past `--max-head`: 431;
- no complete head `--head-timeout` seconds after the connection opened or the request began: 408;
- a body not complete `--body-timeout` seconds after its head: the connection is closed;
- more than `--max-pipelined` bytes sent ahead of an unfinished answer: closed;
- more than `--max-outgoing` bytes waiting for a client that does not read: aborted;
- a close that cannot be flushed in `CLOSE_LINGER` seconds: aborted.
An error answer goes out only on a connection's first request; on a later one the earlier answer
may still be streaming, so the connection is closed instead.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Callable
from typing import Any

from websockets.frames import Close, Frame, Opcode
from websockets.utils import accept_key

from server.settings import Settings
from server.wire import error_body, http_response

__all__ = ["CLOSE_LINGER", "Door", "Gate", "default_max_connections", "raise_fd_limit", "underlying"]

CLOSE_LINGER = 10.0
"""Seconds a closing connection may take to flush what is queued for it before it is aborted."""
LINGER = 2.0
"""Seconds the gate keeps reading (and dropping) after its last word, so that the client reads it."""
LINGER_BYTES = 1024 * 1024
"""Bytes it drops meanwhile; past them it stops reading until `LINGER` is over."""
REFUSAL_WAIT = 1.0
"""Seconds a refused connection (the server full) is given to send its head before the 503."""
PRESSED_WAIT = 0.25
"""`LINGER` when descriptors are running out (a refusal then answers at once, without waiting for
the head); not zero, for a socket closed on unread input sends a reset, which can destroy the answer."""
BODY_CAP = 128 * 1024
"""Bytes of a request body the gate hands on (413 past it): twice the largest the API takes
(64 KiB, past which the app itself answers 413). It bounds the gate's work on a chunked body,
whose framing costs Python per chunk."""
FD_MARGIN_SHARE = 8
"""The default connection cap leaves this share of the descriptor limit (at least `FD_MARGIN_MIN`)
for refusals in flight, Redis, logs and the listening socket."""
FD_MARGIN_MIN = 64
FD_RESERVE = 32
"""Descriptors kept for the process itself (its loop, listening socket, Redis, logs)."""


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to its hard one (what an operator allowed), and
    return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def _fd_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def default_max_connections(fd_limit: int | None = None) -> int:
    """A margin under the descriptor limit, so the server answers 503 before the kernel refuses."""
    limit = fd_limit if fd_limit is not None else _fd_limit()
    return max(1, limit - max(FD_MARGIN_MIN, limit // FD_MARGIN_SHARE))


class Door:
    """One process's gate keeper: the limits, and how many connections are open and were turned away."""

    __slots__ = ("cut", "fd_limit", "limits", "max_connections", "open", "refused")

    def __init__(self, settings: Settings) -> None:
        self.limits = settings
        """Where each limit is read (`max_head`, `head_timeout`, ...): the server's settings."""
        self.max_connections = settings.max_connections or default_max_connections()
        """The cap in force: `--max-connections`, or its default from the descriptor limit."""
        self.fd_limit = _fd_limit()
        """Descriptors this process may hold: near it, refusals are made at once, without lingering."""
        self.open = 0
        """Sockets open right now, refused ones included until they close."""
        self.refused = 0
        """Connections answered 503 / 1013 because the server was full."""
        self.cut: Counter[str] = Counter()
        """Connections ended by a limit, by which one."""

    def stats(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "max": self.max_connections,
            "refused": self.refused,
            "cut": dict(self.cut),
        }


_BLANK_LINE = b"\r\n\r\n"
_CHUNK_SIZE = -1
"""`Gate.chunks` while a chunked body's next size line is awaited; `_TRAILER` after its last chunk;
a positive count while chunk data (and its CRLF) flows; 0 outside a chunked body."""
_TRAILER = -2
_MAX_CHUNK_LINE = 1024
_WS_ACCEPTED = (
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: %s\r\n\r\n"
)
_FULL_REASON = "server full; try again later"


def _header(head: bytes, lowered: bytes, name: bytes) -> tuple[int, bytes | None]:
    """How many times header `name` (lower case) appears in a head, and its last value."""
    key = b"\n" + name + b":"
    count, value, at = 0, None, lowered.find(key)
    while at >= 0:
        count += 1
        start = at + len(key)
        end = head.find(b"\r\n", start)
        value = head[start : end if end >= 0 else len(head)].strip(b" \t")
        at = lowered.find(key, start)
    return count, value


def underlying(transport: asyncio.Transport) -> asyncio.Transport:
    """The socket's own transport behind a gate, for the writes that need no watching: a stream's
    ticks, which the hub writes only while the client reads (so nothing piles up). One Python call
    fewer per tick: SSE fan-out cost 10.0 us per delivery through the gate against 9.0 without."""
    if isinstance(transport, Gate) and transport.real is not None:
        return transport.real
    return transport


class Gate(asyncio.Protocol, asyncio.Transport):
    """One connection, between its socket (`real`) and the protocol serving it (`inner`)."""

    __slots__ = (
        "backlog",
        "body_left",
        "chunks",
        "closing",
        "deadline",
        "discarding",
        "door",
        "inner",
        "inner_paused",
        "make_inner",
        "passing",
        "real",
        "refusing",
        "requests",
        "upgrading",
        "write_paused",
        "wrote",
    )

    def __init__(self, door: Door, make_inner: Callable[[], asyncio.Protocol]) -> None:
        super().__init__()
        self.door = door
        self.make_inner = make_inner
        self.inner: asyncio.Protocol | None = None
        self.real: asyncio.Transport | None = None
        self.backlog = bytearray()
        """Bytes received and not yet handed on: the start of a head, or requests sent ahead."""
        self.body_left = 0
        """Bytes of the current request's body still to come (1 while a chunked one lasts)."""
        self.chunks = 0
        self.requests = 0
        """Heads handed on so far."""
        self.passing = False
        """After a WebSocket upgrade: every byte goes straight on (the frames are not HTTP)."""
        self.upgrading = False
        """A WebSocket handshake was handed on and not yet answered: what follows waits, for it is
        frames if the answer is 101 and requests otherwise."""
        self.wrote = False
        """Whether the protocol serving the connection has written anything: until then the gate
        may answer a client's mistake itself."""
        self.refusing = False
        self.inner_paused = False
        self.write_paused = False
        self.closing = False
        self.discarding = False
        """After the gate's last word: the client's input is read and dropped until it closes
        (`body_left` then counts what was dropped)."""
        self.deadline: asyncio.TimerHandle | None = None

    # To the socket: the protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.real = transport  # type: ignore[assignment]
        door = self.door
        door.open += 1
        loop = asyncio.get_running_loop()
        if door.open > door.max_connections:
            self.refusing = True
            door.refused += 1
            if door.open > door.fd_limit - FD_RESERVE:  # a flood past the margin: no time to listen
                self._refuse()
            else:
                self.deadline = loop.call_later(REFUSAL_WAIT, self._refuse)
            return
        self.deadline = loop.call_later(door.limits.head_timeout, self._expire)
        self.inner = self.make_inner()
        self.inner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            self.body_left += len(data)  # (counting what was dropped)
            if self.body_left > LINGER_BYTES and self.real is not None:
                self.real.pause_reading()  # (a reset now could destroy the answer unread: wait out LINGER)
            return
        if self.passing:
            if self.inner is not None:
                self.inner.data_received(data)
            return
        if self.refusing:
            self.backlog += data
            if _BLANK_LINE in self.backlog or len(self.backlog) > self.door.limits.max_head:
                self._refuse()
            return
        if not self.backlog and not self.body_left and not self.inner_paused and self.inner is not None:
            # The common case: exactly one complete head with no body, in one read.
            end = data.find(_BLANK_LINE)
            if end == len(data) - 4 and self._plain(data):
                self._handed_head()
                self.inner.data_received(data)
                return
        self.backlog += data
        self._advance()

    def eof_received(self) -> bool | None:
        if self.discarding:
            return None  # the client has read the last word and closed its side: close ours
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.door.open -= 1
        self.closing = True
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        inner, self.inner = self.inner, None
        self.real = None
        self.backlog = bytearray()
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.inner is not None:
            self.inner.resume_writing()

    # To the protocol serving the connection: the transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        real = self.real
        if real is None:  # as uvloop's transport does: a writer learns that its client has gone
            raise RuntimeError("the connection is closed")
        if self.discarding or (self.closing and real.is_closing()):
            return  # (after the gate's last word, or an abort: the connection is ending)
        self.wrote = True
        if self.upgrading:
            self._upgraded(data[:13] == b"HTTP/1.1 101 ")
        real.write(data)
        if self.write_paused and real.get_write_buffer_size() - len(data) > self.door.limits.max_outgoing:
            # A client that does not read what it asked for (pongs included); counted without the
            # write at hand, so that one large answer (a resume) to a client that reads is not cut.
            self._cut("outgoing")

    def _upgraded(self, switched: bool) -> None:
        """The answer to a WebSocket handshake: 101, frames follow; anything else, requests do."""
        self.upgrading = False
        self.passing = switched
        if self.backlog:
            asyncio.get_running_loop().call_soon(self._advance)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        if self.real is not None:
            self.real.write_eof()

    def can_write_eof(self) -> bool:
        return self.real is not None and self.real.can_write_eof()

    def close(self) -> None:
        real = self.real
        if real is None or self.closing:
            return
        self.closing = True
        real.close()
        if real.get_write_buffer_size():  # it may never drain: a peer that does not read
            if self.deadline is not None:
                self.deadline.cancel()
            self.deadline = asyncio.get_running_loop().call_later(CLOSE_LINGER, self.abort)

    def abort(self) -> None:
        self.closing = True
        if self.real is not None:
            self.real.abort()

    def is_closing(self) -> bool:
        return self.closing or self.real is None or self.real.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.real.get_extra_info(name, default) if self.real is not None else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """A protocol handing the connection on (ours to uvicorn's, or to a WebSocket's after an upgrade)."""
        self.inner = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.inner is not None
        return self.inner

    def pause_reading(self) -> None:
        if not self.inner_paused:
            self.inner_paused = True
            if self.real is not None and not self.real.is_closing():
                self.real.pause_reading()

    def resume_reading(self) -> None:
        if self.inner_paused:
            self.inner_paused = False
            if self.real is not None and not self.real.is_closing():
                self.real.resume_reading()
            if self.backlog:
                asyncio.get_running_loop().call_soon(self._advance)

    def is_reading(self) -> bool:
        return not self.inner_paused

    def get_write_buffer_size(self) -> int:
        return self.real.get_write_buffer_size() if self.real is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.real.get_write_buffer_limits() if self.real is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.real is not None:
            self.real.set_write_buffer_limits(high, low)

    # Framing requests

    def _plain(self, head: bytes) -> bool:
        """A head within the limits with no body and no upgrade, one the fast case may hand on as is."""
        limits = self.door.limits
        if len(head) > limits.max_head or head.find(b"\n") > limits.max_request_line:
            return False
        lowered = head.lower()
        return not (b"\ncontent-length:" in lowered or b"\ntransfer-encoding:" in lowered or b"\nupgrade:" in lowered)

    def _handed_head(self) -> None:
        self.requests += 1
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _advance(self) -> None:
        """Hand on whole requests from the backlog, one at a time, while the protocol reads."""
        limits = self.door.limits
        while self.backlog and self.inner is not None and not self.inner_paused and not self.closing:
            backlog = self.backlog
            if self.upgrading:  # frames or requests: the handshake's answer will tell
                if len(backlog) > limits.max_pipelined:
                    self._cut("pipelined")
                return
            if self.passing:
                data, self.backlog = bytes(backlog), bytearray()
                self.inner.data_received(data)
                return
            if self.chunks:
                if not self._chunk():
                    return
                continue
            if self.body_left:
                take = min(self.body_left, len(backlog))
                data = bytes(backlog[:take])
                del backlog[:take]
                self.body_left -= take
                if not self.body_left and self.deadline is not None:
                    self.deadline.cancel()
                    self.deadline = None
                self.inner.data_received(data)
                continue
            end = backlog.find(_BLANK_LINE)
            line_end = backlog.find(b"\n")
            if (line_end < 0 and len(backlog) > limits.max_request_line) or line_end > limits.max_request_line:
                self._fail(414, "request line too long", "request_line")
                return
            if (end < 0 and len(backlog) > limits.max_head) or end + 4 > limits.max_head:
                self._fail(431, "request header fields too large", "head")
                return
            if end < 0:
                if self.deadline is None:  # a head has begun: it must end in time
                    self.deadline = asyncio.get_running_loop().call_later(limits.head_timeout, self._expire)
                return
            head = bytes(backlog[: end + 4])
            del backlog[: end + 4]
            lowered = head.lower()
            count, value = _header(head, lowered, b"content-length")
            if b"\nupgrade:" in lowered and b"websocket" in lowered:
                self.upgrading = True  # (what follows is frames or requests: the answer will tell)
            elif b"\ntransfer-encoding:" in lowered:
                self.chunks = _CHUNK_SIZE  # (a length beside it is ignored, as RFC 9112 says)
                self.body_left = 1  # (unknown: the chunks tell; not zero, so the body deadline runs)
            elif count:
                if count > 1 or value is None or not value.isdigit() or not value.isascii():
                    self._fail(400, "invalid content-length", "bad_length")
                    return
                if int(value) > BODY_CAP:
                    self._fail(413, f"request body over {BODY_CAP} bytes", "body")
                    return
                self.body_left = int(value)
            self._handed_head()
            if self.body_left:
                self.deadline = asyncio.get_running_loop().call_later(limits.body_timeout, self._expire)
            self.inner.data_received(head)
        if self.inner_paused and not self.chunks and len(self.backlog) - self.body_left > limits.max_pipelined:
            self._cut("pipelined")

    def _chunk(self) -> bool:
        """Hand on as much of a chunked body as is complete in the backlog (size lines, chunk data,
        the trailer), in one piece; False if nothing could be (too little to tell, or malformed)."""
        assert self.inner is not None
        backlog = self.backlog
        at = 0
        while at < len(backlog) and self.chunks:
            if self.chunks > 0:  # chunk data, with its CRLF
                take = min(self.chunks, len(backlog) - at)
                at += take
                self.chunks -= take
                if not self.chunks:
                    self.chunks = _CHUNK_SIZE
                continue
            if self.chunks == _TRAILER:
                if backlog.startswith(b"\r\n", at):
                    end = at + 2
                elif (found := backlog.find(_BLANK_LINE, at)) >= 0:
                    end = found + 4
                else:
                    if len(backlog) - at > self.door.limits.max_head:
                        self._fail(431, "request trailer fields too large", "head")
                        return False
                    break
                at = end
                self.chunks = self.body_left = 0
                if self.deadline is not None:
                    self.deadline.cancel()
                    self.deadline = None
                break
            end = backlog.find(b"\r\n", at)  # a size line: hex digits, maybe `;extensions`
            if end < 0 or end - at > _MAX_CHUNK_LINE:
                if end - at > _MAX_CHUNK_LINE or len(backlog) - at > _MAX_CHUNK_LINE:
                    self._fail(400, "invalid chunk size", "bad_length")
                    return False
                break
            digits = bytes(backlog[at:end]).split(b";", 1)[0].strip(b" \t")
            if not digits or not digits.isascii() or digits.strip(b"0123456789abcdefABCDEF"):
                self._fail(400, "invalid chunk size", "bad_length")
                return False
            size = int(digits, 16)
            self.body_left += size + end + 2 - at  # (counting the body's bytes against `BODY_CAP`)
            if self.body_left > BODY_CAP:
                self._fail(413, f"request body over {BODY_CAP} bytes", "body")
                return False
            at = end + 2
            self.chunks = size + 2 if size else _TRAILER
        if not at:
            return False
        data = bytes(backlog[:at])
        del backlog[:at]
        self.inner.data_received(data)
        return True

    # Ending a connection

    def _expire(self) -> None:
        """A head or a body that did not arrive in time (the first head counts from the connection's opening)."""
        self.deadline = None
        if self.body_left and not self.discarding:
            self._cut("body_timeout")
        elif self.requests == 0 or self.backlog:
            self._fail(408, "request timeout: the request head did not arrive in time", "head_timeout")

    def _fail(self, status: int, reason: str, kind: str) -> None:
        """Answer a client's mistake and close: only while nothing has been written on the
        connection (else the answer might land in the middle of one still streaming), else just close."""
        self.door.cut[kind] += 1
        real = self.real
        if real is None or self.closing:
            return
        if not self.wrote:
            body = error_body(reason)
            headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            self._last_word(http_response(status, b"", headers, body, True))
        else:
            self.abort()

    def _cut(self, kind: str) -> None:
        if not self.closing:
            self.door.cut[kind] += 1
        self.abort()

    def _refuse(self) -> None:
        """The server is full: 503 with `retry-after`, or a WebSocket accepted only to be closed with
        1013, so that clients hear "try again later" rather than a reset."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.real is None or self.closing:
            return
        head = bytes(self.backlog)
        lowered = head.lower()
        _, key = _header(head, lowered, b"sec-websocket-key")
        if key and b"\nupgrade:" in lowered and b"websocket" in lowered:
            accepted = _WS_ACCEPTED % accept_key(key.decode("latin-1")).encode()
            close = Frame(Opcode.CLOSE, Close(1013, _FULL_REASON).serialize()).serialize(mask=False)
            self._last_word(accepted + close)
        else:
            body = error_body(f"{_FULL_REASON}: {self.door.max_connections} connections open")
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"retry-after", b"2"),
            ]
            self._last_word(http_response(503, b"", headers, body, True))

    def _last_word(self, data: bytes) -> None:
        """Send a final answer and end gently: a FIN after it, then read and drop whatever the client
        still sends, for at most `LINGER` seconds (`PRESSED_WAIT` when descriptors are running out)
        and `LINGER_BYTES` (closing on unread input would send a reset, which can destroy the answer
        before the client reads it)."""
        real = self.real
        if real is None:
            return
        self.closing = self.discarding = True
        self.backlog = bytearray()
        self.body_left = self.chunks = 0
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        real.write(data)
        if not real.can_write_eof():
            real.close()
            return
        real.write_eof()
        if self.inner_paused:
            real.resume_reading()
        pressed = self.door.open > self.door.fd_limit - FD_RESERVE  # (descriptors running out: free it sooner)
        self.deadline = asyncio.get_running_loop().call_later(PRESSED_WAIT if pressed else LINGER, self.abort)
