"""A WebSocket client that stops reading never holds up the others, and is cut off cleanly.

The slow client connects through a socket with a tiny receive buffer and a one-frame client
queue, subscribes, reads its first ticks and then stops reading. On loopback the server's socket
send buffer auto-tunes to about 4 MB (net.ipv4.tcp_wmem), so the ~3,000 RELIANCE ticks the fast
clients read (~300 KB) would all fit in kernel buffers and never block the server's write. The
slow client therefore also follows TCS, a firehose no fast client reads: TCS is published (in
requests of 100 ticks, well inside history) until the server's write to the slow client is really
stuck and the sweeper evicts it (about 28,000 TCS frames, ~2.9 MB, on a stock Linux loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import RunningServer, prices, publish, start_server, until

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

WAIT = 30.0
"""Upper bound on any single wait, in seconds."""
HISTORY = 200
MAX_LAG = 100
FAST_CLIENTS = 50
ROUNDS = 30
ROUND_TICKS = 100
"""RELIANCE ticks per round: 30 x 100 = 3,000 for every fast client."""
FLOOD_BATCH = HISTORY // 2
"""TCS ticks per publish request: well inside history, so a server that writes from a per-client
task (rather than as ticks arrive) can keep the slow client in step until its socket is full."""
FLOOD_REQUESTS = 50
"""Publish requests of TCS per round while the slow client is not yet evicted (~500 KB of frames)."""


async def frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message = await ws.recv()
    parsed: dict[str, Any] = json.loads(message)
    return parsed


class FastClient:
    """A WebSocket subscriber on RELIANCE that reads everything as it comes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ticks: list[tuple[int, float]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.ticks[-1][0] if self.ticks else 0

    async def start(self) -> None:
        await self.ws.send(json.dumps({"op": "subscribe", "symbols": ["RELIANCE"]}))
        assert (await frame(self.ws))["type"] == "subscribed"
        first = await frame(self.ws)
        assert first["type"] == "tick"
        self.ticks.append((first["seq"], first["price"]))
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for message in self.ws:
            tick = json.loads(message)
            assert tick["type"] == "tick" and tick["symbol"] == "RELIANCE", tick
            self.ticks.append((tick["seq"], tick["price"]))


async def caught_up(clients: list[FastClient], seq: int) -> None:
    """Until every fast client has read RELIANCE up to `seq`; a client that died fails the test."""

    def all_read() -> bool:
        for client in clients:
            assert client.task is not None
            if client.task.done():
                client.task.result()
                raise AssertionError("a fast client's connection ended early")
        return all(c.last_seq >= seq for c in clients)

    await until(all_read, timeout=WAIT, step=0.005)


async def ws_stats(client: httpx.AsyncClient, server: RunningServer) -> dict[str, int]:
    response = await client.get(server.url + "/api/stats")
    assert response.status_code == 200
    stats: dict[str, int] = response.json()["transports"]["ws"]
    return stats


async def drain_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """Read everything left, then the close; returns the frames and how it closed."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        try:
            while True:
                frames.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return frames, closed


@contextlib.asynccontextmanager
async def slow_connection(server: RunningServer) -> AsyncIterator[ClientConnection]:
    """A WebSocket over a socket with a 4 KiB receive buffer, and a client queue of one frame."""
    address = urlparse(server.url)
    assert address.hostname is not None and address.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect((address.hostname, address.port))
    sock.setblocking(False)
    # No keepalive (its pong would queue behind megabytes we deliberately do not read), and no
    # compression (repetitive tick frames would shrink ~5x and take far longer to fill the buffers).
    async with asyncio.timeout(WAIT):
        ws = await connect(server.ws_url, sock=sock, max_queue=1, ping_interval=None, compression=None)
    try:
        yield ws
    finally:
        await ws.close()


def contiguous_from(seqs: list[int], start: int) -> bool:
    return seqs == list(range(start, start + len(seqs)))


@pytest.fixture(scope="module")
def small_history_server(serving_path: str) -> Iterator[RunningServer]:
    """History 200, max lag 100; RELIANCE and TCS for the eviction story, INFY for the resume story."""
    flags = ("--no-feed", "--history", str(HISTORY), "--ws-max-lag", str(MAX_LAG), "--symbols", "RELIANCE,TCS,INFY")
    with start_server(*flags) as server:
        yield server


async def test_a_stalled_websocket_reader_is_evicted_without_delaying_fifty_others(
    small_history_server: RunningServer,
) -> None:
    """50 fast clients get all 3,000 RELIANCE ticks in order while one client that stopped reading
    is evicted (1008) after a clean in-order prefix, and its resume with `after` reports a gap."""
    server = small_history_server
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        slow_connection(server) as slow,
        contextlib.AsyncExitStack() as stack,
    ):
        # The slow client subscribes, reads its first frames, then stops reading.
        await slow.send(json.dumps({"op": "subscribe", "symbols": ["RELIANCE", "TCS"]}))
        subscribed = await frame(slow)
        assert subscribed["type"] == "subscribed"
        epoch = subscribed["epoch"]
        opening = [await frame(slow), await frame(slow)]
        assert sorted((t["type"], t["symbol"], t["seq"]) for t in opening) == [
            ("tick", "RELIANCE", 1),
            ("tick", "TCS", 1),
        ]

        fast: list[FastClient] = []
        for _ in range(FAST_CLIENTS):
            # No keepalive: a busy test process must not fail on a late pong.
            ws = await stack.enter_async_context(connect(server.ws_url, ping_interval=None))
            client = FastClient(ws)
            await client.start()
            fast.append(client)

        published: list[dict[str, Any]] = []
        flooded = 0
        slow_reader: asyncio.Task[tuple[list[dict[str, Any]], ConnectionClosed]] | None = None
        evicted_at_round: int | None = None
        for round_no in range(ROUNDS):
            start_price = 1000.0 + round_no * ROUND_TICKS * 0.05
            published += await publish(http, server, "RELIANCE", prices(ROUND_TICKS, start_price))
            if slow_reader is None:
                for _ in range(FLOOD_REQUESTS):
                    await publish(http, server, "TCS", prices(FLOOD_BATCH, 2000.0 + flooded * 0.05))
                    flooded += FLOOD_BATCH
            await caught_up(fast, published[-1]["seq"])
            if slow_reader is None and (await ws_stats(http, server))["evicted"] >= 1:
                # The server gives a stalled socket 10 s to take the close frame: resume reading now.
                evicted_at_round = round_no
                slow_reader = asyncio.create_task(drain_until_closed(slow))

        if slow_reader is None:

            async def evicted() -> bool:
                return (await ws_stats(http, server))["evicted"] >= 1

            try:
                await until(evicted, timeout=WAIT, step=0.05)
            except AssertionError:
                pytest.fail(f"the slow client was never evicted: {flooded} TCS ticks did not stall its socket")
            slow_reader = asyncio.create_task(drain_until_closed(slow))
        print(f"slow client evicted after round {evicted_at_round}, {flooded} TCS ticks published")

        # Every fast client got every RELIANCE tick, in order, exactly once.
        expected = [(1, opening_price(opening, "RELIANCE"))] + [(t["seq"], t["price"]) for t in published]
        assert len(expected) == ROUNDS * ROUND_TICKS + 1
        for client in fast:
            assert client.ticks == expected
        stats = await ws_stats(http, server)
        assert stats["evicted"] == 1, stats
        assert stats["open_connections"] == FAST_CLIENTS, stats

        # The slow client reads a contiguous prefix of each symbol, then the 1008 close.
        frames, closed = await slow_reader
        assert closed.rcvd is not None, closed
        assert closed.rcvd.code == 1008, closed
        assert all(f["type"] == "tick" for f in frames), [f for f in frames if f["type"] != "tick"]
        last_seen: dict[str, int] = {}
        for symbol in ("RELIANCE", "TCS"):
            seqs = [f["seq"] for f in frames if f["symbol"] == symbol]
            assert contiguous_from(seqs, 2), f"{symbol}: not a contiguous prefix from seq 2"
            last_seen[symbol] = seqs[-1] if seqs else 1
        print(f"slow client read {len(frames)} frames before the close; last seen {last_seen}")
        assert last_seen["RELIANCE"] < published[-1]["seq"] - HISTORY, "stalled too late to test a gap"

        # More TCS after the eviction, so its cursor is out of history too.
        tcs_latest = (await publish(http, server, "TCS", prices(HISTORY + 50, 5000.0)))[-1]
        reliance_latest = published[-1]

        # Resuming with `after` past what history holds: a gap per symbol, then its latest tick.
        async with connect(server.ws_url) as again:
            await again.send(
                json.dumps({"op": "subscribe", "symbols": ["RELIANCE", "TCS"], "after": last_seen, "epoch": epoch})
            )
            assert (await frame(again))["type"] == "subscribed"
            resumed = [await frame(again) for _ in range(4)]
        for symbol, latest in (("RELIANCE", reliance_latest), ("TCS", tcs_latest)):
            mine = [f for f in resumed if f["symbol"] == symbol]
            assert [f["type"] for f in mine] == ["gap", "tick"], resumed
            assert mine[0]["epoch"] == epoch
            fields = ("seq", "price", "epoch")
            assert {k: mine[1][k] for k in fields} == {k: latest[k] for k in fields}


def opening_price(ticks: list[dict[str, Any]], symbol: str) -> float:
    price: float = next(t["price"] for t in ticks if t["symbol"] == symbol)
    return price


async def test_a_client_cut_off_within_history_resumes_without_loss(small_history_server: RunningServer) -> None:
    """Resuming with `after` still inside history replays exactly the missed ticks, no gap."""
    server, symbol = small_history_server, "INFY"
    async with httpx.AsyncClient(timeout=WAIT) as http:
        async with connect(server.ws_url) as first:
            await first.send(json.dumps({"op": "subscribe", "symbols": [symbol]}))
            subscribed = await frame(first)
            assert (await frame(first))["seq"] == 1
        missed = await publish(http, server, symbol, prices(HISTORY - 10))
        async with connect(server.ws_url) as again:
            await again.send(
                json.dumps({"op": "subscribe", "symbols": [symbol], "after": {symbol: 1}, "epoch": subscribed["epoch"]})
            )
            assert (await frame(again))["type"] == "subscribed"
            replayed = [await frame(again) for _ in missed]
            live = await publish(http, server, symbol, [999.95])
            after_live = await frame(again)
    assert [(f["type"], f["seq"], f["price"]) for f in replayed] == [("tick", t["seq"], t["price"]) for t in missed]
    assert (after_live["type"], after_live["seq"]) == ("tick", live[0]["seq"])
