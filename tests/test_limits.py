"""The gate (`server.gate`): every connection counted and bounded, and a clean answer at each limit.

Each story plays a hostile client with raw sockets on loopback (the issue's reproductions, scaled
down) and checks the answer it gets, that the server's memory and sockets stay bounded, and that a
subscriber watching meanwhile loses nothing. The gate sits in front of both serving paths, so the
module runs on both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.gate import CLOSE_LINGER
from tests.helpers import RunningServer, ServerFactory, prices, publish, start_server, until
from tests.test_slow_consumer import slow_connection
from tui.embedded import server_command

SERVING = ("fast path", "portable path")

WAIT = 20.0
SYMBOL = "TCS"


def address(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


async def stats(server: RunningServer) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        answer: dict[str, object] = (await client.get(server.url + "/api/stats")).json()
        return answer


async def cut(server: RunningServer) -> dict[str, int]:
    connections = (await stats(server))["connections"]
    assert isinstance(connections, dict)
    return dict(connections["cut"])


async def read_all(reader: asyncio.StreamReader, limit: int = 1 << 16) -> bytes:
    """What the server sends until it closes or resets the connection (bounded in time and size)."""
    data = b""
    async with asyncio.timeout(WAIT):
        with contextlib.suppress(ConnectionError):  # (a reset after the answer: the answer counts)
            while len(data) < limit and (piece := await reader.read(limit)):
                data += piece
    return data


@contextlib.asynccontextmanager
async def raw(server: RunningServer) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*address(server))
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


class Watcher:
    """An SSE subscriber that must see every tick published meanwhile, once and in order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self, server: RunningServer) -> None:
        opened = asyncio.Event()

        async def follow() -> None:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=None)) as client,
                aconnect_sse(client, "GET", f"{server.url}/api/stream/{SYMBOL}") as source,
            ):
                opened.set()
                async for event in source.aiter_sse():
                    if event.event == "tick":
                        self.seqs.append(json.loads(event.data)["seq"])

        self.task = asyncio.create_task(follow())
        async with asyncio.timeout(WAIT):
            await opened.wait()
        await until(lambda: bool(self.seqs), timeout=WAIT)

    async def saw(self, seq: int) -> None:
        await until(lambda: bool(self.seqs) and self.seqs[-1] >= seq, timeout=WAIT)
        assert self.seqs == list(range(self.seqs[0], self.seqs[-1] + 1)), self.seqs

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def watched(server_factory: ServerFactory) -> AsyncIterator[tuple[RunningServer, Watcher]]:
    server = server_factory("--no-feed", "--head-timeout", "1", "--body-timeout", "1")
    watcher = Watcher()
    await watcher.start(server)
    yield server, watcher
    await watcher.stop()


async def published(server: RunningServer) -> int:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        [tick] = await publish(client, server, SYMBOL, [3500.0])
    seq: int = tick["seq"]
    return seq


# --- Sizes ------------------------------------------------------------------------------------------


async def test_a_long_request_line_gets_414_and_a_large_head_431(watched: tuple[RunningServer, Watcher]) -> None:
    server, watcher = watched
    async with raw(server) as (reader, writer):
        writer.write(b"GET /api/price/" + b"A" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    async with raw(server) as (reader, writer):
        writer.write(b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "request header fields too large"}
    assert {"request_line": 1, "head": 1}.items() <= (await cut(server)).items()
    await watcher.saw(await published(server))


async def flood(server: RunningServer, opening: bytes, block: bytes) -> tuple[bytes, int]:
    """Send `opening`, then `block` after block until the server answers or ends the connection
    (64 MiB at most); what it answered, and how much was sent."""
    sent = 0
    async with raw(server) as (reader, writer):
        reading = asyncio.ensure_future(read_all(reader))  # read while sending, as a browser would
        writer.write(opening)
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(WAIT):
                while sent < 64 * 1024 * 1024 and not reading.done():
                    writer.write(block)
                    await writer.drain()
                    sent += len(block)
        return await reading, sent


async def test_a_huge_header_value_is_refused_before_it_is_read_whole(
    watched: tuple[RunningServer, Watcher],
) -> None:
    """The issue's 143 MB value cost 24 s of CPU: now the connection ends at the limit, having read
    a small part of what the client tried to send."""
    server, watcher = watched
    answer, sent = await flood(server, b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\nx-huge: ", b"v" * 65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 32 * 1024 * 1024, f"the server kept reading: {sent} bytes"
    await watcher.saw(await published(server))


async def test_an_upgrade_header_on_a_plain_request_does_not_switch_the_limits_off(
    watched: tuple[RunningServer, Watcher],
) -> None:
    """A request that names `Upgrade: websocket` but is served as plain HTTP (no `Connection:
    upgrade`) used to turn the gate into a pass-through for the rest of the connection, and the
    huge header after it was read whole (150 MiB, 24 s). The connection now ends at the limit (no
    answer: one was already given on it)."""
    server, watcher = watched
    plain_upgrade = b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\r\n"
    async with raw(server) as (reader, writer):
        writer.write(plain_upgrade)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        reading = asyncio.ensure_future(read_all(reader))
        writer.write(b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\nx-huge: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(WAIT):
                while sent < 64 * 1024 * 1024 and not reading.done():
                    writer.write(b"v" * 65536)
                    await writer.drain()
                    sent += 65536
        assert await reading == b""
    assert sent < 32 * 1024 * 1024, f"the server kept reading: {sent} bytes"
    assert (await cut(server))["head"] == 1
    await watcher.saw(await published(server))


async def test_a_chunked_body_of_tiny_chunks_is_cut_at_the_gates_cap(watched: tuple[RunningServer, Watcher]) -> None:
    """One-byte chunks cost Python per chunk to frame (2.3 s of CPU for 9 MB of them, sent to a
    path that answers without reading the body). Past 128 KiB of body (the API takes 64 KiB at
    most) the gate ends the connection: with 413 if nothing was answered yet, else at once."""
    server, watcher = watched
    opening = (
        b"POST /api/nowhere HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    answer, sent = await flood(server, opening, b"1\r\na\r\n" * 10_000)
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]  # (answered before the body came)
    assert sent < 4 * 1024 * 1024, f"the server kept reading: {sent} bytes"
    assert (await cut(server))["body"] == 1
    await watcher.saw(await published(server))


async def test_a_malformed_chunk_gets_400_and_a_declared_huge_body_413(watched: tuple[RunningServer, Watcher]) -> None:
    server, watcher = watched
    async with raw(server) as (reader, writer):
        writer.write(b"POST /api/publish HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
        answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    async with raw(server) as (reader, writer):
        writer.write(b"POST /api/publish HTTP/1.1\r\nhost: x\r\ncontent-length: 200000\r\n\r\n{")
        answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    await watcher.saw(await published(server))


# --- Time -------------------------------------------------------------------------------------------


async def test_a_silent_connection_and_a_trickled_head_get_408(watched: tuple[RunningServer, Watcher]) -> None:
    server, watcher = watched
    async with raw(server) as (reader, _):
        silent = await read_all(reader)
    assert silent.startswith(b"HTTP/1.1 408 "), silent[:200]
    async with raw(server) as (reader, writer):
        head = b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\n\r\n"
        answer = asyncio.ensure_future(read_all(reader))
        for byte in head[:-1]:  # a byte every 0.1 s: the head would take 4 s; the limit is 1 s
            if answer.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
        trickled = await answer
    assert trickled.startswith(b"HTTP/1.1 408 "), trickled[:200]
    assert (await cut(server))["head_timeout"] >= 2
    await watcher.saw(await published(server))


async def test_a_body_that_never_ends_is_closed(watched: tuple[RunningServer, Watcher]) -> None:
    server, watcher = watched
    async with raw(server) as (reader, writer):
        writer.write(
            b"POST /api/publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + (server.token or "").encode() + b"\r\ncontent-length: 100\r\n\r\n{"
        )
        assert await read_all(reader) == b""  # closed, with nothing published
    assert (await cut(server))["body_timeout"] == 1
    await watcher.saw(await published(server))


# --- What a client may queue ------------------------------------------------------------------------


async def test_requests_pipelined_behind_a_stream_are_bounded(watched: tuple[RunningServer, Watcher]) -> None:
    """The issue's reproduction: 259 KiB of requests behind an SSE stream cost ~25 MB each, kept.
    Now the server takes them one at a time: what waits is in the client's socket, or, past
    `--max-pipelined` in the server's hands (it reads 256 KiB at a time), the connection is closed."""
    server, watcher = watched
    before = await stats(server)
    assert isinstance(before["rss_bytes"], int)
    price = b"GET /api/price/TCS HTTP/1.1\r\nhost: x\r\n\r\n"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        latest = (await client.get(f"{server.url}/api/price/{SYMBOL}")).json()["seq"]
    firsts = [b"/api/stream/TCS", b"/api/longpoll/TCS?after=%d&timeout=30" % latest] * 3
    async with contextlib.AsyncExitStack() as stack:
        for first in firsts:
            _, writer = await stack.enter_async_context(raw(server))
            writer.write(b"GET " + first + b" HTTP/1.1\r\nhost: x\r\n\r\n" + price * (300_000 // len(price)))

        async def all_taken_in() -> bool:
            now = await stats(server)
            transports, connections = now["transports"], now["connections"]
            assert isinstance(transports, dict) and isinstance(connections, dict)
            held = transports["sse"]["open_connections"] + transports["longpoll"]["open_connections"] - 1
            # Each is held or was cut (a cut stream may count as both until the server notices).
            return bool(held + connections["cut"].get("pipelined", 0) >= len(firsts))  # (-1: the watcher)

        await until(all_taken_in, timeout=WAIT)
        after = (await stats(server))["rss_bytes"]
        assert isinstance(after, int)
        assert after - before["rss_bytes"] < 16 * 1024 * 1024, (before["rss_bytes"], after)
    await watcher.saw(await published(server))


async def test_a_websocket_client_that_pings_and_never_reads_costs_a_bounded_amount(
    watched: tuple[RunningServer, Watcher],
) -> None:
    """Every ping gets a pong; a client that never read them piled them up in the server (6 million
    pings, +779 MB). Now the server either stops reading from it (back-pressure: its pings wait in
    its own socket) or, past `--max-outgoing` (1 MiB), aborts it; either way its memory is bounded."""
    server, watcher = watched
    before = (await stats(server))["rss_bytes"]
    assert isinstance(before, int)
    key = base64.b64encode(os.urandom(16))
    ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125  # masked with a zero key
    sent, stalled = 0, False
    async with raw(server) as (_, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, hold little
        writer.write(
            b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: " + key + b"\r\nsec-websocket-version: 13\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            while sent < 48 * 1024 * 1024 and not (await cut(server)).get("outgoing"):
                writer.write(ping * 512)
                try:
                    async with asyncio.timeout(2):
                        await writer.drain()
                except TimeoutError:
                    stalled = True  # the server no longer reads from it
                    break
                sent += len(ping) * 512
        after = (await stats(server))["rss_bytes"]
        assert isinstance(after, int)
    assert stalled or (await cut(server)).get("outgoing") == 1, f"still served after {sent} bytes of pings"
    assert after - before < 16 * 1024 * 1024, (before, after, sent)
    await watcher.saw(await published(server))


# --- Full ----------------------------------------------------------------------------------------------


async def test_a_full_server_answers_503_or_1013_and_serves_again_once_a_slot_frees(
    server_factory: ServerFactory,
) -> None:
    """With --max-connections 3, every kind of connection counts: three open streams fill it; a
    fourth client, whatever it asks, gets 503 with retry-after (a WebSocket: 1013), never a reset;
    the streams are undisturbed; closing one lets the next client in."""
    small = server_factory("--no-feed", "--max-connections", "3")
    client = httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=None), limits=httpx.Limits(max_keepalive_connections=0))
    async with client, contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            source = await stack.enter_async_context(aconnect_sse(client, "GET", f"{small.url}/api/stream/{SYMBOL}"))
            assert source.response.status_code == 200
        for path in ("/healthz", f"/api/stream/{SYMBOL}", f"/api/price/{SYMBOL}"):
            refused = await client.get(small.url + path)
            assert refused.status_code == 503, (path, refused.text)
            assert refused.headers["retry-after"] == "2"
            assert "server full" in refused.json()["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT), connect(small.ws_url) as ws:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, closed.value
        full = await stats_via_freed_slot(small, stack)
        assert full["refused"] == 4
    code, output = small.stop()
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output


async def stats_via_freed_slot(server: RunningServer, stack: contextlib.AsyncExitStack) -> dict[str, int]:
    """Close every stream (the slots free as their sockets close) then, let in again, publish and
    read the counters."""
    await stack.aclose()
    async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as client:

        async def served() -> bool:
            return (await client.get(server.url + "/healthz")).status_code == 200

        await until(served, timeout=WAIT)
        async with asyncio.timeout(WAIT), connect(server.ws_url) as ws:
            await ws.send('{"op": "ping"}')
            assert json.loads(await ws.recv())["type"] == "pong"
        connections: dict[str, int] = (await client.get(server.url + "/api/stats")).json()["connections"]
    return connections


async def test_flooded_with_defaults_it_answers_503_keeps_its_subscribers_and_recovers() -> None:
    """The issue's "done when": a server on its defaults (here under a 256-descriptor limit, so the
    default cap is 192), flooded with streams and idle sockets until full: further clients get 503,
    not a reset; a subscriber from before loses nothing; once the flood closes, everyone is served."""
    launcher = ["prlimit", "--nofile=256:256", "--", *server_command([])]
    server = start_server("--tick-rate", "20", "--seed", "7", launcher=launcher)
    try:
        limit = (await stats(server))["connections"]
        assert isinstance(limit, dict)
        assert limit["max"] == 256 - 64
        watcher = Watcher()
        await watcher.start(server)
        flood: list[asyncio.StreamWriter] = []
        turned_away: list[asyncio.StreamReader] = []
        streams = b"GET /api/stream/INFY HTTP/1.1\r\nhost: x\r\n\r\n"
        try:
            for n in range(limit["max"] + 30):  # (within the descriptors the margin leaves)
                reader, writer = await asyncio.open_connection(*address(server))
                flood.append(writer)
                if n % 2:
                    writer.write(streams)
                if n >= limit["max"]:
                    turned_away.append(reader)
            answers = await asyncio.gather(*(read_all(reader, limit=12) for reader in turned_away))
            assert {answer[:12] for answer in answers} == {b"HTTP/1.1 503"}
            refused = 0
            async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as client:
                for _ in range(5):
                    answer = await client.get(server.url + "/healthz")
                    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
                    refused += 1
            seen = len(watcher.seqs)
            await until(lambda: len(watcher.seqs) > seen + 10, timeout=WAIT)  # still fed while full
        finally:
            for writer in flood:
                writer.transport.abort()
        async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as client:

            async def served() -> bool:
                return (await client.get(server.url + "/healthz")).status_code == 200

            await until(served, timeout=WAIT)
            latest = (await client.get(f"{server.url}/api/price/{SYMBOL}")).json()["seq"]
        await watcher.saw(latest)
        await watcher.stop()
        assert refused == 5
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output


async def test_an_evicted_websocket_that_never_reads_is_closed_and_frees_its_slot(
    server_factory: ServerFactory,
) -> None:
    """A reader too far behind is evicted with 1008, but the close frame cannot reach a client that
    does not read: its socket used to stay open for good, no longer counted. Now it counts until
    the server, after the close's grace period, aborts it."""
    server = server_factory("--no-feed", "--history", "2000", "--ws-max-lag", "1000")
    before = (await stats(server))["connections"]
    assert isinstance(before, dict)
    async with slow_connection(server) as slow, httpx.AsyncClient(timeout=WAIT) as client:
        await slow.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL]}))
        assert json.loads(await slow.recv())["type"] == "subscribed"

        async def evicted() -> bool:
            await publish(client, server, SYMBOL, prices(1000, 2000.0))
            ws = (await stats(server))["transports"]
            assert isinstance(ws, dict)
            return bool(ws["ws"]["evicted"])

        await until(evicted, timeout=WAIT, step=0)

        async def closed_by_the_server() -> bool:
            connections = (await stats(server))["connections"]
            assert isinstance(connections, dict)
            return bool(connections["open"] <= before["open"] + 1)  # (+1: the client's pool)

        await until(closed_by_the_server, timeout=WAIT + CLOSE_LINGER)


async def test_one_large_answer_to_a_client_that_reads_is_not_cut(server_factory: ServerFactory) -> None:
    """A long poll resumed from far back is one write of about 6 MB, more than loopback's socket
    buffers (up to 4 MB) plus `--max-outgoing` (1 MiB): a client that reads it, slowly, must get it
    whole, not be cut off as one that does not read (it was, after 3.1 MB)."""
    server = server_factory("--no-feed", "--history", "80000", "--symbols", SYMBOL)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        for batch in range(72):
            await publish(client, server, SYMBOL, prices(1000, 1000.0 + batch * 50))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address(server))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET /api/longpoll/{SYMBOL}?after=1 HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        await asyncio.sleep(0.5)  # (not reading yet: the answer waits in the server's buffer)
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            assert length > 6_000_000
            body = await reader.readexactly(length)
    finally:
        writer.transport.abort()
    assert len(json.loads(body)["ticks"]) == 72_000
    assert "outgoing" not in await cut(server)
