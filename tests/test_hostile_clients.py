"""Hostile clients (issue 13): a big batch does not hold the loop, odd input gets a clean answer,
and clients that stop reading do not hold up a shutdown. Each story also checks that the server
logged no traceback for the client's mistake.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from server.hub import Entry, Hub, Listener
from server.schema import Tick
from tests.helpers import WAIT, RunningServer, ServerFactory, prices, publish, until, until_sync

BOTH_PATHS = True
"""Every story here runs on the fast path, the portable ASGI path and the Redis broker (conftest)."""

EVENT_ID = re.compile(rb"\nid: [^:\n]+:(\d+)\n")


# -- slicing, in the hub itself ----------------------------------------------------------------------


class Recorder(Listener):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_entry(self, entry: Entry) -> None:
        self.seen.append(entry.seq)


def ticks(first: int, last: int) -> list[Tick]:
    return [Tick(symbol="TCS", seq=n, price=100.0, ts=1.8e9, epoch="e1") for n in range(first, last + 1)]


async def test_a_big_batch_is_told_in_slices_in_order_while_other_work_runs() -> None:
    """100 ticks to 10 listeners with a slice of 50 deliveries: a few ticks now, the rest in later
    turns of the loop, with other work between; a second batch queues behind the first; a
    listener that joins mid-batch hears from the next tick told, one that leaves hears no more."""
    hub = Hub(["TCS"], capacity=1000, slice_size=50)
    listeners = [Recorder() for _ in range(10)]
    for listener in listeners:
        hub.subscribe("TCS", listener)
    leaving = hub.subscribe("TCS", Recorder())
    other_work: list[int] = []

    async def meanwhile() -> None:
        while True:
            other_work.append(len(listeners[0].seen))
            await asyncio.sleep(0)

    worker = asyncio.create_task(meanwhile())
    for tick in ticks(1, 100):
        hub.deliver(tick)
    assert 0 < len(listeners[0].seen) < 10 and hub.waiting > 90  # one slice now, the rest later
    await until(lambda: len(listeners[0].seen) >= 30)
    for tick in ticks(101, 150):  # while the first batch is still being told
        hub.deliver(tick)
    leaving.cancel()
    left_at = len(leaving.listener.seen)  # type: ignore[attr-defined]
    joiner = Recorder()
    hub.subscribe("TCS", joiner)
    joined_at = hub.topics["TCS"].head_seq
    await until(lambda: hub.waiting == 0)
    worker.cancel()
    for listener in listeners:
        assert listener.seen == list(range(1, 151))
    assert joiner.seen == list(range(joined_at + 1, 151))  # the ring holds the rest: no gap, no repeat
    assert len(leaving.listener.seen) == left_at  # type: ignore[attr-defined]
    assert [e.seq for e in hub.topics["TCS"].ring] == list(range(1, 151))
    assert hub.continuations > 10
    assert len(set(other_work)) > 10  # it ran between slices, seeing the batch advance


async def read_events(port: int, symbol: str, until_seq: int, request: bytes | None = None) -> list[int]:
    """A raw SSE subscriber: the seq of every tick event until `until_seq`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request or b"GET /api/stream/%s HTTP/1.1\r\nHost: x\r\n\r\n" % symbol.encode())
    data = bytearray()
    marker = b":%d\n" % until_seq
    try:
        while marker not in data[-4096:]:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    return [int(seq) for seq in EVENT_ID.findall(bytes(data))]


async def test_a_big_batch_publish_lets_polls_be_answered_while_it_is_delivered(
    server_factory: ServerFactory,
) -> None:
    """1,500 ticks in one publish to 100 SSE subscribers (150,000 deliveries): polls sent meanwhile
    are answered with ticks from inside the batch (before slicing, the whole batch went out in
    the publish's own turn of the loop, and no poll could see it half done), and every subscriber
    gets every tick once, in order."""
    server = server_factory("--no-feed", "--history", "2000")
    port = int(server.url.rsplit(":", 1)[1])
    count, subscribers, symbol = 1500, 100, "TCS"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        start = (await client.get(f"{server.url}/api/price/{symbol}")).json()["seq"]
        readers = [asyncio.create_task(read_events(port, symbol, start + count)) for _ in range(subscribers)]

        async def all_subscribed() -> bool:
            stats = (await client.get(f"{server.url}/api/stats")).json()
            return int(stats["transports"]["sse"]["open_connections"]) >= subscribers

        await until(all_subscribed)
        seen: list[int] = []
        done = asyncio.Event()

        async def poll() -> None:
            async with httpx.AsyncClient(timeout=WAIT) as poller:
                while not done.is_set():
                    seen.append((await poller.get(f"{server.url}/api/price/{symbol}")).json()["seq"])

        pollers = [asyncio.create_task(poll()) for _ in range(4)]
        await asyncio.sleep(0.05)
        body = {"ticks": [{"symbol": symbol, "price": price} for price in prices(count)]}
        answer = await client.post(f"{server.url}/api/publish", json=body, headers=server.auth)
        assert answer.status_code == 201, answer.text
        stored = answer.json()["ticks"]
        received = await asyncio.wait_for(asyncio.gather(*readers), WAIT)
        done.set()
        await asyncio.gather(*pollers)
    assert [t["seq"] for t in stored] == list(range(start + 1, start + count + 1))
    for seqs in received:
        assert seqs == list(range(start, start + count + 1))  # the opening tick, then the batch
    assert any(start + 1 <= seq < start + count for seq in seen), sorted(set(seen))
    assert "Traceback" not in server.output, server.output


# -- bad input on the wire ---------------------------------------------------------------------------


def raw_exchange(server: RunningServer, request: bytes, then: Callable[[], object] | None = None) -> bytes:
    """Send `request` on a fresh socket; (after `then()`) everything until the server closes it."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request)
        if then is not None:
            then()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_an_http_1_0_sse_client_gets_a_complete_unchunked_answer(shared_server: RunningServer, own_symbol: str) -> None:
    """No chunked encoding for HTTP/1.0 (RFC 9112): a body with a length, then the server closes;
    resuming from the latest tick, the answer waits for the next one."""
    answer = raw_exchange(shared_server, b"GET /api/stream/%s HTTP/1.0\r\n\r\n" % own_symbol.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = head.lower().split(b"\r\n")
    assert headers[0].startswith(b"http/1.1 200"), head
    assert b"transfer-encoding: chunked" not in headers, head
    assert b"content-length: %d" % len(body) in headers and b"connection: close" in headers, head
    assert EVENT_ID.findall(body) == [b"1"], body  # the opening tick

    epoch = httpx.get(f"{shared_server.url}/api/price/{own_symbol}", timeout=WAIT).json()["epoch"]
    request = b"GET /api/stream/%s HTTP/1.0\r\nLast-Event-ID: %s:1\r\n\r\n" % (own_symbol.encode(), epoch.encode())

    def publish_one() -> None:  # (before or after the request is held: either way it is answered)
        response = httpx.post(
            f"{shared_server.url}/api/publish", json={"symbol": own_symbol, "price": 12.5}, headers=shared_server.auth
        )
        assert response.status_code == 201, response.text

    head, _, body = raw_exchange(shared_server, request, publish_one).partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"content-length: %d" % len(body) in head.lower(), head
    assert EVENT_ID.findall(body) in ([b"2"], []), body  # the new tick (or, if one came first, a heartbeat)
    assert "Traceback" not in shared_server.output, shared_server.output


async def test_invalid_utf8_on_a_websocket_closes_1007_without_a_traceback(shared_server: RunningServer) -> None:
    async with connect(shared_server.ws_url) as ws:
        ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"op": "ping", "x": "\xff\xfe"}'))
        ws.send_data()
        try:
            async with asyncio.timeout(WAIT):
                await ws.recv()
        except ConnectionClosed:
            pass
        assert ws.close_code == 1007
    await asyncio.sleep(0.2)  # (whatever the server logs for it is written by now)
    assert "Traceback" not in shared_server.output, shared_server.output
    assert "UTF-8" not in shared_server.output, shared_server.output


NESTED = (
    "[" * 30_000 + "]" * 30_000,
    '{"op": ' + "[" * 900 + "]" * 900 + "}",
    '{"op": ' + "[" * 990 + "]" * 990 + "}",
    '{"op": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}",
    '{"op": "subscribe", "symbols": ["TCS"], "after": {"TCS": ' + "[" * 900 + "]" * 900 + "}}",
    '{"op": "subscribe", "symbols": ' + "[" * 5000 + "]" * 5000 + "}",
)


async def test_deeply_nested_json_on_a_websocket_gets_an_error_and_the_socket_stays_usable(
    shared_server: RunningServer,
) -> None:
    async with connect(shared_server.ws_url, max_size=None) as ws:
        for text in NESTED:
            await ws.send(text)
            async with asyncio.timeout(WAIT):
                reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and len(reply["detail"]) < 300, reply
            await ws.send('{"op": "ping"}')
            async with asyncio.timeout(WAIT):
                assert json.loads(await ws.recv())["type"] == "pong"
    assert "Traceback" not in shared_server.output, shared_server.output


# -- shutdown ----------------------------------------------------------------------------------------


def test_sigterm_with_clients_that_never_read_exits_cleanly(server_factory: ServerFactory) -> None:
    """SSE and WebSocket clients resume 10,000 ticks each and never read: their sockets cannot
    flush. The server still exits 0 on SIGTERM with no traceback and no error (uvicorn used to
    wait out its graceful timeout, then cancel each stream, logging a traceback per stream)."""
    server = server_factory("--no-feed", "--history", "10000", "--ws-max-lag", "9999")
    symbol = "TCS"
    count = 10_000
    stored: list[dict[str, object]] = []

    async def fill() -> None:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            stored.extend(await publish(client, server, symbol, prices(count)))

    asyncio.run(fill())
    epoch = stored[-1]["epoch"]
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    stalled: list[socket.socket] = []
    try:
        for n in range(12):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            if n % 3:
                sock.sendall(
                    b"GET /api/stream/%s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s:0\r\n\r\n"
                    % (symbol.encode(), str(epoch).encode())
                )
            else:
                sock.sendall(
                    ws_upgrade()
                    + ws_client_text(json.dumps({"op": "subscribe", "symbols": [symbol], "after": {symbol: 0}}))
                )
            stalled.append(sock)
        until_sync(lambda: open_streams(server) >= len(stalled))
        code, output = server.stop(timeout=10.0)
    finally:
        for sock in stalled:
            sock.close()
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output


def open_streams(server: RunningServer) -> int:
    transports = httpx.get(f"{server.url}/api/stats", timeout=WAIT).json()["transports"]
    return int(transports["sse"]["open_connections"]) + int(transports["ws"]["open_connections"])


def ws_upgrade() -> bytes:
    return (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def ws_client_text(text: str) -> bytes:
    """One masked text frame (a client's), with a zero mask so the payload reads as is."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload
