"""The app's own mode clients against a hostile server: bounded reads, deadlines, a prompt stop.

The adversary is a raw asyncio server on loopback written here (not pushpull): it answers with
lines, events or bodies that never end, trickles an answer a byte at a time, or never answers.
Each client runs with small `Limits`, so every story takes a second or two; each asserts that the
client shows an error (not `live`), that what it read stayed near its cap (its own wire counter,
and what the adversary managed to write), that nothing was counted as an update, and that
`stop()` ends `run()`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.helpers import running_client, until
from tui.modes import Backoff, ConnectionState, LimitExceeded, Limits, ModeClient, ServerClock, make_client
from tui.modes.bounded import EventGuard

SYMBOL = "RELIANCE"
KIB = 1024
MIB = 1024 * KIB
LIMITS = Limits(
    body_bytes=64 * KIB,
    sse_line_bytes=16 * KIB,
    sse_event_bytes=64 * KIB,
    ws_message_bytes=64 * KIB,
    request_deadline=1.0,
    longpoll_margin=1.0,
    stream_silence=2.0,
)
"""Small bounds, so a story takes a second or two."""
READ_SLACK = 256 * KIB
"""What a client may read past a cap: the piece that crossed it and what was in flight."""
BUDGET = 96 * MIB
"""What the adversary writes at most before it holds the connection, silent: without a cap a
client reads all of it and then waits for more, forever."""
WRITTEN_BOUND = BUDGET // 2
"""What the adversary may get onto a capped client's socket: the cap, plus kernel buffers
(loopback's may grow to 32 MiB here)."""
PATIENT = Backoff(base=30.0, cap=30.0)
"""After its first failure a client waits in backoff: its state holds still to be read, and
`stop()` must end that wait too."""
STOP_BOUND = 10.0
"""`run()` ends within this after `stop()` (an "it ends" guard, not a speed figure)."""
FAILS_WITHIN = 15.0

Behaviour = Callable[["Adversary", str, asyncio.StreamWriter], Awaitable[None]]
Frames = Callable[["Adversary", asyncio.StreamWriter], Awaitable[None]]


class Adversary:
    """A raw HTTP server on 127.0.0.1 and a free port: each request's path goes to `behave`,
    which writes what it likes; `written` counts the bytes it got onto the sockets. With
    `frames` it upgrades each connection to a WebSocket and writes those frames instead."""

    def __init__(self, behave: Behaviour | None = None, *, frames: Frames | None = None) -> None:
        self.behave = behave
        self.frames = frames
        self.written = 0
        self.paths: list[str] = []
        self.url = ""
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def hold(self) -> None:
        """Keep the connection open and silent until the adversary closes."""
        await self._closing.wait()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.written += len(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self.paths.append(path)
                if self.frames is not None:
                    await self.send(writer, ws_handshake(head))
                    await self.frames(self, writer)
                    await self.hold()
                else:
                    assert self.behave is not None
                    await self.behave(self, path, writer)
                if self._closing.is_set():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up: what a capped client does
        finally:
            self._handlers.discard(task)
            writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Adversary]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            # Handlers end by themselves (asyncio's stream server logs a cancelled one as an error).
            self._closing.set()
            server.close()
            if self._handlers:
                await asyncio.wait(self._handlers, timeout=STOP_BOUND)


def endless(head: bytes, piece: bytes) -> Behaviour:
    """Write `head`, then `piece` over and over (up to `BUDGET`), and never end the answer."""

    async def behave(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, head)
        while adversary.written < BUDGET and not adversary.closing:
            await adversary.send(writer, piece)
        await adversary.hold()

    return behave


JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
"""A body that ends when the connection closes: no length to refuse it by, only a cap."""
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\nretry: 1000\n\n"
"""An event stream's head and a first complete event (the `retry:` block, as pushpull sends)."""
BIG_PIECE = 64 * KIB


@asynccontextmanager
async def running(client: ModeClient) -> AsyncIterator[asyncio.Task[None]]:
    """Run a client as a pane does; at the end `stop()` must end `run()` within `STOP_BOUND`."""
    async with running_client(client, STOP_BOUND) as task:
        yield task
    assert client.state is ConnectionState.STOPPED


def client_for(mode: str, adversary: Adversary, **options: object) -> ModeClient:
    options = {"limits": LIMITS, "backoff": PATIENT, "poll_interval": 0.5, **options}
    return make_client(mode, adversary.url, SYMBOL, **options)


async def failed(client: ModeClient, match: str) -> None:
    """The client's last attempt failed saying `match`, and it does not claim to be live."""
    await until(lambda: client.error is not None, timeout=FAILS_WITHIN, what=f"an error like {match!r}")
    assert client.error is not None and match in client.error, client.error
    assert client.state is not ConnectionState.LIVE
    assert client.stats.updates == 0  # nothing capped or aborted counted as an update
    assert client.stats.bytes_received == 0


def read_at_most(client: ModeClient, adversary: Adversary, cap: int) -> None:
    assert client.stats.wire_bytes_received <= cap + READ_SLACK, client.stats.wire_bytes_received
    assert adversary.written < WRITTEN_BOUND, adversary.written


# -- sizes -------------------------------------------------------------------------------------------


async def test_an_sse_line_that_never_ends_is_cut_at_the_line_cap() -> None:
    piece = b"x" * BIG_PIECE
    async with Adversary(endless(SSE_HEAD + b"data: ", piece)).serving() as adversary:
        client = client_for("sse", adversary)
        async with running(client):
            await failed(client, "an event line over 16,384 bytes")
            read_at_most(client, adversary, LIMITS.sse_line_bytes)


async def test_an_sse_event_that_never_ends_is_cut_at_the_event_cap() -> None:
    piece = b"data: x\n" * (BIG_PIECE // 8)  # short lines, never the blank one that ends an event
    async with Adversary(endless(SSE_HEAD, piece)).serving() as adversary:
        client = client_for("sse", adversary)
        async with running(client):
            await failed(client, "an event over 65,536 bytes")
            read_at_most(client, adversary, LIMITS.sse_event_bytes)


async def test_an_sse_stream_trickling_bytes_that_never_make_an_event_is_dropped() -> None:
    """A byte a tenth of a second keeps httpx's read timeout quiet, but no event ever ends."""

    async def trickle(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, SSE_HEAD + b": ")
        while not adversary.closing:
            await adversary.send(writer, b".")
            await asyncio.sleep(0.1)

    async with Adversary(trickle).serving() as adversary:
        client = client_for("sse", adversary)
        async with running(client):
            await failed(client, "no complete event in 2 s")


@pytest.mark.parametrize("mode", ["poll", "longpoll"])
async def test_a_huge_answer_is_refused_at_the_body_cap(mode: str) -> None:
    async with Adversary(endless(JSON_HEAD, b" " * BIG_PIECE)).serving() as adversary:
        client = client_for(mode, adversary, hold_timeout=1.0) if mode == "longpoll" else client_for(mode, adversary)
        async with running(client):
            await failed(client, "an answer over 65,536 bytes")
            read_at_most(client, adversary, LIMITS.body_bytes)
            assert client.stats.empty_responses == 0


async def test_an_answer_declaring_a_huge_length_is_refused_unread() -> None:
    async def declare(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n" + b" " * BIG_PIECE)
        await adversary.hold()

    async with Adversary(declare).serving() as adversary:
        client = client_for("poll", adversary)
        async with running(client):
            await failed(client, "an answer of 1,000,000,000 bytes")
            assert client.stats.wire_bytes_received < 1 * KIB  # the head alone


async def test_a_compressed_answer_is_refused() -> None:
    """A decoder turns a small piece into megabytes: no byte cap bounds it, so none is accepted."""

    async def gzipped(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 0\r\n\r\n")

    async with Adversary(gzipped).serving() as adversary:
        client = client_for("poll", adversary)
        async with running(client):
            await failed(client, "a gzip-encoded answer")


async def test_a_huge_clock_answer_is_refused_at_the_body_cap() -> None:
    async with Adversary(endless(JSON_HEAD, b" " * BIG_PIECE)).serving() as adversary:
        client = client_for("sse", adversary, clock=ServerClock(trust_loopback=False))
        async with running(client):
            await failed(client, "an answer over 65,536 bytes")
            read_at_most(client, adversary, LIMITS.body_bytes)
            assert adversary.paths[0] == "/api/time"


# -- time --------------------------------------------------------------------------------------------


async def never_answer(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
    await adversary.hold()


async def test_a_clock_that_never_answers_times_out_at_the_deadline() -> None:
    async with Adversary(never_answer).serving() as adversary:
        client = client_for("ws", adversary, clock=ServerClock(trust_loopback=False))
        async with running(client):
            await failed(client, "timed out")
            assert adversary.paths == ["/api/time"]


@pytest.mark.parametrize("mode", ["poll", "longpoll", "sse", "ws"])
async def test_stop_ends_a_run_syncing_its_clock_with_a_server_that_never_answers(mode: str) -> None:
    patient = Limits(request_deadline=60.0)  # far past the stop bound: only stop() can end it
    async with Adversary(never_answer).serving() as adversary:
        client = client_for(mode, adversary, limits=patient, clock=ServerClock(trust_loopback=False))
        async with running(client):
            await until(lambda: adversary.paths == ["/api/time"], timeout=FAILS_WITHIN)
            assert client.state is ConnectionState.CONNECTING and client.error is None


def trickled(body: bytes, every: float) -> Behaviour:
    """A whole, valid-looking answer, one byte every `every` seconds."""

    async def behave(adversary: Adversary, path: str, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
        for byte in body:
            if adversary.closing:
                return
            await adversary.send(writer, bytes([byte]))
            await asyncio.sleep(every)
        await adversary.hold()

    return behave


TICK = json.dumps({"symbol": SYMBOL, "price": 1000.0, "ts": 1.0, "seq": 1, "epoch": "e"}).encode()


@pytest.mark.parametrize("mode", ["poll", "longpoll"])
async def test_an_answer_trickled_a_byte_at_a_time_ends_at_the_deadline(mode: str) -> None:
    body = TICK if mode == "poll" else b'{"ticks": [' + TICK + b'], "gap": false}'
    async with Adversary(trickled(body, every=0.1)).serving() as adversary:  # ~10 s to send
        client = client_for(mode, adversary, hold_timeout=1.0) if mode == "longpoll" else client_for(mode, adversary)
        async with running(client):
            await failed(client, "timed out")
            assert adversary.written < len(body)  # mid-answer (head included, about a third of it)


async def test_stop_ends_a_run_reading_a_trickled_answer() -> None:
    patient = Limits(request_deadline=60.0)
    async with Adversary(trickled(TICK * 100, every=0.05)).serving() as adversary:
        client = client_for("poll", adversary, limits=patient)
        async with running(client):
            await until(lambda: adversary.written > 50, timeout=FAILS_WITHIN)  # the head and a few bytes


# -- WebSocket ---------------------------------------------------------------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_handshake(request: bytes) -> bytes:
    """The 101 answering an upgrade request (RFC 6455's accept key)."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept + b"\r\n\r\n"
    )


async def test_a_websocket_message_past_the_cap_closes_the_socket_unread() -> None:
    async def huge(adversary: Adversary, writer: asyncio.StreamWriter) -> None:
        await adversary.send(writer, b"\x82\x7f" + (100 * MIB).to_bytes(8, "big"))  # a 100 MiB binary frame
        while adversary.written < 4 * MIB:
            await adversary.send(writer, b"x" * BIG_PIECE)

    async with Adversary(frames=huge).serving() as adversary:
        client = client_for("ws", adversary)
        async with running(client):
            await failed(client, "message too big")
            assert client.stats.wire_bytes_received < 1 * KIB  # the upgrade's head alone


async def test_a_deeply_nested_websocket_message_is_an_error_not_a_bug() -> None:
    """`json.loads` gives up on deep nesting with RecursionError: a server's mistake, retried."""

    async def nested(adversary: Adversary, writer: asyncio.StreamWriter) -> None:
        message = b"[" * 60_000 + b"]" * 60_000
        await adversary.send(writer, b"\x82\x7f" + len(message).to_bytes(8, "big") + message)

    async with Adversary(frames=nested).serving() as adversary:
        client = client_for("ws", adversary, limits=Limits(ws_message_bytes=1 * MIB))
        async with running(client):
            await failed(client, "unexpected frame")
            assert client.state is not ConnectionState.FAILED


# -- the guard's line reading ------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_the_event_guard_sees_every_event_end_however_the_bytes_are_split(ending: bytes) -> None:
    """Events of 8-byte lines pass a 16-byte event cap fed a byte at a time (a CRLF split across
    two pieces is one line end, not a blank line); the same lines without blank ones do not."""
    line = b"data: 12"
    stream = (line + ending + line + ending + ending) * 50
    guard = EventGuard(Pieces([]), line_bytes=8, event_bytes=16, silence=60.0)
    for byte in stream:
        guard.check(bytes([byte]))
    unended = EventGuard(Pieces([]), line_bytes=8, event_bytes=16, silence=60.0)
    with pytest.raises(LimitExceeded, match="an event over 16 bytes"):
        for byte in (line + ending) * 3:
            unended.check(bytes([byte]))


class Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
