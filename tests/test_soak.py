"""A soak: mixed SSE, WebSocket, long-poll and poll clients on one server for a minute at 20 ticks/s.

Not in the default run (`-m "not soak"` in pyproject's addopts); run it with
`PUSHPULL_SOAK_SECONDS=20 .venv/bin/pytest -m soak` (CI does, for 20 s; 60 s by default).

The clients are raw ones, written here, rather than the app's mode clients: those reconnect and
resume quietly, which is right for a pane and wrong for a soak, where a dropped stream must fail.
Every push client (SSE, WebSocket) must get every tick once and in order; a long poll must see no
gap, duplicate or reordering; a poller never goes back. Then every client leaves, and the server's
RSS must come back within 20 % of what it was after a warm-up (one client of each kind for a
moment: lazy imports and first-use caches are not a leak), and its open fds to what they were.

The load suits a 2-core machine that runs the server and these clients at once, the clients in
one Python process: 200 SSE + 200 WebSocket streams (6,000 messages a second to parse), 50 long
polls re-asking on every tick of their symbol (500 requests a second) and 20 pollers every 0.25 s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from tests.helpers import RunningServer, start_server, until

SOAK_SECONDS = float(os.environ.get("PUSHPULL_SOAK_SECONDS", "60"))
SCALE = float(os.environ.get("PUSHPULL_SOAK_SCALE", "1"))
"""Multiplies every client count: 5 is the hostile tester's 1,000 SSE + 1,000 WebSocket."""
TICK_RATE = 20.0
"""Ticks published a second, in all: one every 50 ms, the symbols in turn."""
SYMBOLS = ("RELIANCE", "TCS")
SSE_CLIENTS = round(200 * SCALE)
WS_CLIENTS = round(200 * SCALE)
"""Each follows every symbol on one socket."""
LONG_POLL_CLIENTS = round(50 * SCALE)
POLL_CLIENTS = round(20 * SCALE)
POLL_INTERVAL = 0.25
LONG_POLL_HOLD = "10"
"""Seconds a long poll may be held; ticks come every 100 ms per symbol, so it seldom is."""
RSS_SLACK = 0.20
"""RSS once every client has left may be this much over its start."""
FD_SLACK = 5
SETTLE = 20.0
"""Seconds the server has to let go of what the clients held, and clients to drain their last ticks."""

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SOAK_SECONDS + 180)]


@dataclass
class Seen:
    """What one client received: the seqs of each symbol in arrival order, and anything wrong."""

    kind: str
    symbols: tuple[str, ...]
    seqs: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    resent: int = 0
    """Requests sent again because the server had closed the kept-alive connection they went on."""
    live: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once it has a tick of each of its symbols (its first: the latest when it joined)."""

    def got(self, symbol: str, seq: int) -> None:
        self.seqs.setdefault(symbol, []).append(seq)
        if len(self.seqs) == len(self.symbols):
            self.live.set()

    def last(self, symbol: str) -> int | None:
        seqs = self.seqs.get(symbol)
        return seqs[-1] if seqs else None


# -- the clients: each runs until cancelled, and fails loudly on anything unexpected --------------


async def sse_client(http: httpx.AsyncClient, url: str, seen: Seen) -> None:
    (symbol,) = seen.symbols
    async with aconnect_sse(http, "GET", f"{url}/api/stream/{symbol}") as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            if event.event == "tick":
                tick = json.loads(event.data)
                seen.got(tick["symbol"], tick["seq"])
            elif event.event != "message" or event.data:  # a bare `retry:` block comes as an empty "message"
                seen.problems.append(f"event {event.event}: {event.data}")
    seen.problems.append("the stream ended")


async def ws_client(url: str, seen: Seen) -> None:
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": list(seen.symbols)}))
        async for message in ws:
            frame = json.loads(message)
            if frame["type"] == "tick":
                seen.got(frame["symbol"], frame["seq"])
            elif frame["type"] != "subscribed":
                seen.problems.append(f"frame {message!r}")
    seen.problems.append("the socket closed")


async def get(http: httpx.AsyncClient, url: str, seen: Seen, **options: Any) -> httpx.Response:
    """GET, sent once more if the server closed the pooled connection as the request went out.

    That is HTTP/1.1's keep-alive race, not a fault: a connection left idle for the server's
    keep-alive timeout (5 s) is closed, and a client whose loop lags (hundreds of clients in one
    process) may reuse it before it has read the close. Every client resends then; a poll or a long
    poll from the same cursor loses nothing. The count is printed."""
    try:
        return await http.get(url, **options)
    except (httpx.RemoteProtocolError, httpx.ReadError):  # closed before it answered; reset as the request came
        seen.resent += 1
        return await http.get(url, **options)


async def long_poll_client(http: httpx.AsyncClient, url: str, seen: Seen) -> None:
    (symbol,) = seen.symbols
    while True:
        params = {"timeout": LONG_POLL_HOLD}
        cursor = seen.last(symbol)
        if cursor is not None:
            params["after"] = str(cursor)
        response = await get(http, f"{url}/api/longpoll/{symbol}", seen, params=params)
        if response.status_code == 204:
            continue
        response.raise_for_status()
        reply = response.json()
        if reply["gap"] and cursor is not None:
            seen.problems.append(f"gap after {cursor}: {reply}")
        for tick in reply["ticks"]:
            seen.got(tick["symbol"], tick["seq"])


async def poll_client(http: httpx.AsyncClient, url: str, seen: Seen) -> None:
    (symbol,) = seen.symbols
    etag: str | None = None
    while True:
        response = await get(http, f"{url}/api/price/{symbol}", seen, headers={"If-None-Match": etag} if etag else {})
        if response.status_code != 304:
            response.raise_for_status()
            etag = response.headers["etag"]
            tick = response.json()
            seen.got(tick["symbol"], tick["seq"])
        await asyncio.sleep(POLL_INTERVAL)


# -- the server, seen from outside -------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/PID/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def publish_for(server: RunningServer, seconds: float) -> float:
    """Publish one tick every 1/TICK_RATE s, the symbols in turn, for `seconds`; the seconds it took.

    It runs on a thread of its own, on a fixed schedule, so the rate holds however busy the clients'
    event loop is (they then lag, reading from their sockets' buffers, and catch up at the end)."""
    start = time.monotonic()
    with httpx.Client(timeout=SETTLE) as http:
        for n in range(int(seconds * TICK_RATE)):
            time.sleep(max(0.0, start + n / TICK_RATE - time.monotonic()))
            body = {"symbol": SYMBOLS[n % len(SYMBOLS)], "price": round(1000 + 0.05 * (n % 2000), 2)}
            response = http.post(server.url + "/api/publish", json=body, headers=server.auth)
            assert response.status_code == 201, response.text
    return time.monotonic() - start


async def latest_seqs(http: httpx.AsyncClient, url: str) -> dict[str, int]:
    response = await http.get(url + "/api/symbols")
    response.raise_for_status()
    return {tick["symbol"]: tick["seq"] for tick in response.json() if tick["symbol"] in SYMBOLS}


# -- one round of clients ----------------------------------------------------------------------------


@dataclass
class Round:
    """A set of clients on one server, from connecting to leaving."""

    sse: int
    ws: int
    long_poll: int
    poll: int
    seen: list[Seen] = field(default_factory=list)
    peak_rss: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    """When (time.monotonic()) every client was live, the publishing ended, all had caught up, all had left."""
    publish_seconds: float = 0.0

    async def run(self, server: RunningServer, seconds: float) -> tuple[dict[str, int], dict[str, int]]:
        """Connect every client, publish for `seconds`, wait for the last ticks to arrive, and leave.
        Returns the latest seq of each symbol before publishing and after."""
        pid = server.process.pid
        unlimited = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(SETTLE, read=None)
        tasks: list[asyncio.Task[None]] = []
        async with (
            httpx.AsyncClient(limits=unlimited, timeout=timeout) as streams,
            httpx.AsyncClient(limits=unlimited, timeout=timeout) as requests,
            httpx.AsyncClient(timeout=SETTLE) as publisher,
        ):

            def start(kind: str, symbols: Iterable[str], client: Callable[[Seen], Coroutine[Any, Any, None]]) -> None:
                seen = Seen(kind, tuple(symbols))
                self.seen.append(seen)
                tasks.append(asyncio.create_task(client(seen), name=f"{kind} {len(self.seen)}"))

            for n in range(self.sse):
                start("sse", [SYMBOLS[n % len(SYMBOLS)]], lambda seen: sse_client(streams, server.url, seen))
            for _ in range(self.ws):
                start("ws", SYMBOLS, lambda seen: ws_client(server.ws_url, seen))
            for n in range(self.long_poll):
                start(
                    "longpoll", [SYMBOLS[n % len(SYMBOLS)]], lambda seen: long_poll_client(requests, server.url, seen)
                )
            for n in range(self.poll):
                start("poll", [SYMBOLS[n % len(SYMBOLS)]], lambda seen: poll_client(requests, server.url, seen))
            try:

                def healthy() -> bool:
                    failed = [task for task in tasks if task.done()]
                    assert not failed, f"{len(failed)} clients ended early: {describe(failed[0])}"
                    return True

                await until(lambda: healthy() and all(seen.live.is_set() for seen in self.seen), timeout=SETTLE)
                self.timings["connected"] = time.monotonic()
                before = await latest_seqs(publisher, server.url)

                publishing = asyncio.ensure_future(asyncio.to_thread(publish_for, server, seconds))
                while not publishing.done():
                    healthy()
                    self.peak_rss = max(self.peak_rss, rss_bytes(pid))
                    await asyncio.wait((publishing,), timeout=1.0)
                self.publish_seconds = publishing.result()
                self.timings["published"] = time.monotonic()
                after = await latest_seqs(publisher, server.url)
                await until(
                    lambda: healthy() and all(self.caught_up(seen, after) for seen in self.seen),
                    timeout=SETTLE + seconds * SCALE,  # clients that fell behind read the rest from their buffers
                    what="every client has the last tick of each of its symbols",
                )
                self.timings["drained"] = time.monotonic()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.timings["left"] = time.monotonic()
        return before, after

    @staticmethod
    def caught_up(seen: Seen, after: dict[str, int]) -> bool:
        return all(seen.last(symbol) == after[symbol] for symbol in seen.symbols)


def describe(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return f"{task.get_name()}: cancelled"
    exc = task.exception()
    return f"{task.get_name()}: {type(exc).__name__}: {exc}" if exc else f"{task.get_name()}: returned"


def check(seen: Seen, before: dict[str, int], after: dict[str, int]) -> list[str]:
    """What is wrong with what one client received (nothing, if it is right)."""
    wrong = [f"{seen.kind}: {problem}" for problem in seen.problems]
    for symbol in seen.symbols:
        seqs = seen.seqs[symbol]
        if seen.kind == "poll":
            backwards = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
            if backwards:
                wrong.append(f"poll {symbol}: went back or repeated: {backwards[:5]}")
            continue
        expected = list(range(before[symbol], after[symbol] + 1))
        if seqs != expected:
            missing = sorted(set(expected) - set(seqs))
            repeated = len(seqs) - len(set(seqs))
            wrong.append(
                f"{seen.kind} {symbol}: {len(seqs)} ticks, {len(expected)} expected (from {before[symbol]});"
                f" missing {missing[:10]}{'...' if len(missing) > 10 else ''}, {repeated} repeated,"
                f" in order: {seqs == sorted(seqs)}"
            )
    return wrong


async def settle(pid: int, fds: int, rss: int) -> tuple[int, int]:
    """Wait (up to SETTLE s) for the server's fds and RSS to come back; the last reading of each."""
    deadline = time.monotonic() + SETTLE
    while True:
        now_fds, now_rss = open_fds(pid), rss_bytes(pid)
        if (now_fds <= fds + FD_SLACK and now_rss <= rss * (1 + RSS_SLACK)) or time.monotonic() > deadline:
            return now_fds, now_rss
        await asyncio.sleep(0.5)


@pytest.fixture
def soak_server() -> Iterator[RunningServer]:
    server = start_server("--no-feed", "--heartbeat", "5", "--symbols", ",".join(SYMBOLS))
    yield server
    code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


async def test_mixed_clients_get_every_tick_once_and_the_server_gives_back_what_they_held(
    soak_server: RunningServer,
) -> None:
    pid = soak_server.process.pid
    warm_up = Round(sse=1, ws=1, long_poll=1, poll=1)
    await warm_up.run(soak_server, 1.0)
    await asyncio.sleep(1.0)
    start_rss, start_fds = rss_bytes(pid), open_fds(pid)

    soak = Round(sse=SSE_CLIENTS, ws=WS_CLIENTS, long_poll=LONG_POLL_CLIENTS, poll=POLL_CLIENTS)
    began = time.monotonic()
    before, after = await soak.run(soak_server, SOAK_SECONDS)
    took = time.monotonic() - began
    end_fds, end_rss = await settle(pid, start_fds, start_rss)

    mib = 2**20
    print(
        f"\nsoak: {SOAK_SECONDS:g} s publishing (took {soak.publish_seconds:.1f} s; {took:.1f} s in all:"
        f" {', '.join(f'{name} at {at - began:.1f} s' for name, at in soak.timings.items())}),"
        f" {len(soak.seen)} clients ({sum(seen.resent for seen in soak.seen)} requests resent),"
        f" seqs {before} -> {after}; server RSS start {start_rss / mib:.1f} MiB, peak {soak.peak_rss / mib:.1f},"
        f" end {end_rss / mib:.1f} ({end_rss / start_rss:.2f}x); fds start {start_fds}, end {end_fds}"
    )
    wrong = [problem for seen in soak.seen for problem in check(seen, before, after)]
    assert not wrong, f"{len(wrong)} problems, the first: {wrong[:10]}"
    assert end_fds <= start_fds + FD_SLACK, f"fds: {start_fds} at the start, {end_fds} after every client left"
    assert end_rss <= start_rss * (1 + RSS_SLACK), (
        f"RSS: {start_rss / mib:.1f} MiB at the start, {end_rss / mib:.1f} MiB after every client left"
        f" (peak {soak.peak_rss / mib:.1f})"
    )
