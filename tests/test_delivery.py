"""Every subscriber gets every tick: in order, exactly once, by SSE, WebSocket, long poll and poll.

Each story starts the subscriber first, waits until it holds the opening (latest) tick, then
publishes, and collects until the last published `seq` arrives. Every wait is bounded, so a lost
tick fails the test instead of hanging it. The stories share one server, each on a symbol of its
own, so each sees that symbol's history from its opening tick.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse
from websockets.asyncio.client import connect

from tests.helpers import RunningServer, prices, publish

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

WAIT = 30.0
"""Upper bound for any one story; a missing tick fails at this point rather than hanging."""
OPENING_SEQ = 1
"""Every symbol opens with one tick at startup, so published ticks start at seq 2."""

Tick = dict[str, Any]


def new_client() -> httpx.AsyncClient:
    """A client with room for many open streams and reads longer than any long-poll hold."""
    return httpx.AsyncClient(timeout=httpx.Timeout(WAIT), limits=httpx.Limits(max_connections=None))


async def publish_in_batches(
    client: httpx.AsyncClient, server: RunningServer, symbol: str, count: int, batch: int = 10
) -> list[Tick]:
    """Publish `count` distinct prices as several POSTs, so subscribers see ticks arrive over time."""
    all_prices = prices(count)
    stored: list[Tick] = []
    for start in range(0, count, batch):
        stored += await publish(client, server, symbol, all_prices[start : start + batch])
    return stored


def ticks_of_sse(events: list[ServerSentEvent]) -> list[Tick]:
    """The ticks of an SSE stream, checking each is a `tick` event whose id is `<epoch>:<seq>`."""
    ticks: list[Tick] = []
    for event in events:
        assert event.event == "tick", (event.event, event.data)
        tick: Tick = event.json()
        assert event.id == f"{tick['epoch']}:{tick['seq']}"
        ticks.append(tick)
    return ticks


def ticks_of_ws(frames: list[dict[str, Any]]) -> list[Tick]:
    """The ticks of WebSocket `tick` frames, without their `type` field."""
    assert all(frame["type"] == "tick" for frame in frames), [f for f in frames if f["type"] != "tick"]
    return [{k: v for k, v in frame.items() if k != "type"} for frame in frames]


async def sse_subscriber(
    client: httpx.AsyncClient, server: RunningServer, symbol: str, last_seq: int, ready: asyncio.Event
) -> list[ServerSentEvent]:
    """Read a fresh SSE stream until `last_seq`; `ready` is set once the opening tick is in."""
    events: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", f"{server.url}/api/stream/{symbol}") as source:
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            if not event.data:
                # httpx-sse also yields the `retry:` block and each heartbeat comment's blank line
                # (it keeps the last id); a browser dispatches no event without data.
                continue
            events.append(event)
            ready.set()
            if event.event == "tick" and event.json()["seq"] >= last_seq:
                break
    return events


async def ws_subscriber(
    server: RunningServer, symbol: str, last_seq: int, ready: asyncio.Event
) -> list[dict[str, Any]]:
    """Subscribe over WebSocket and read frames until `last_seq`; `ready` once the first tick is in."""
    frames: list[dict[str, Any]] = []
    async with connect(server.ws_url) as websocket:
        await websocket.send(json.dumps({"op": "subscribe", "symbols": [symbol]}))
        while True:
            frame = json.loads(await websocket.recv())
            frames.append(frame)
            if frame["type"] == "tick":
                ready.set()
                if frame["seq"] >= last_seq:
                    return frames


async def longpoll_subscriber(
    client: httpx.AsyncClient, server: RunningServer, symbol: str, last_seq: int, ready: asyncio.Event
) -> list[Tick]:
    """Long poll from the latest tick, each request `after` the last seq held, until `last_seq`."""
    url = f"{server.url}/api/longpoll/{symbol}"
    first = await client.get(url)
    assert first.status_code == 200, first.text
    assert first.json()["gap"] is False
    ticks: list[Tick] = first.json()["ticks"]
    ready.set()
    epoch = ticks[-1]["epoch"]
    while ticks[-1]["seq"] < last_seq:
        response = await client.get(url, params={"after": ticks[-1]["seq"], "timeout": 10, "epoch": epoch})
        if response.status_code == 204:
            continue
        assert response.status_code == 200, response.text
        reply = response.json()
        assert reply["gap"] is False, reply
        assert reply["ticks"], "a 200 long-poll reply carries at least one tick"
        ticks += reply["ticks"]
    return ticks


def assert_opening_then(received: list[Tick], stored: list[Tick], symbol: str) -> None:
    """The subscriber saw the opening tick, then exactly the published ticks, in order."""
    seqs = [tick["seq"] for tick in received]
    assert seqs == list(range(OPENING_SEQ, OPENING_SEQ + len(stored) + 1))
    assert received[0]["symbol"] == symbol
    assert received[1:] == stored


async def test_sse_client_receives_300_ticks_in_order_exactly_once(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """A browser-style SSE subscriber gets the latest tick, then all 300 published, no more, no less."""
    server, symbol = shared_server, own_symbol
    ready = asyncio.Event()
    async with new_client() as client, asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
        subscriber = group.create_task(sse_subscriber(client, server, symbol, OPENING_SEQ + 300, ready))
        await ready.wait()
        stored = await publish_in_batches(client, server, symbol, 300)
    assert [tick["seq"] for tick in stored] == list(range(2, 302))
    assert_opening_then(ticks_of_sse(subscriber.result()), stored, symbol)


async def test_websocket_client_receives_300_ticks_in_order_exactly_once(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """A WebSocket subscriber is told `subscribed`, gets the latest tick, then all 300 published."""
    server, symbol = shared_server, own_symbol
    ready = asyncio.Event()
    async with new_client() as client, asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
        subscriber = group.create_task(ws_subscriber(server, symbol, OPENING_SEQ + 300, ready))
        await ready.wait()
        stored = await publish_in_batches(client, server, symbol, 300)
    subscribed, *ticks = subscriber.result()
    assert subscribed["type"] == "subscribed"
    assert subscribed["symbols"] == [symbol]
    assert subscribed["epoch"] == stored[0]["epoch"]
    assert_opening_then(ticks_of_ws(ticks), stored, symbol)


async def test_longpoll_client_receives_300_ticks_in_order_exactly_once(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """A long-polling client, re-asking `after` its last seq, collects all 300 ticks without a gap."""
    server, symbol = shared_server, own_symbol
    ready = asyncio.Event()
    async with new_client() as client, asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
        subscriber = group.create_task(longpoll_subscriber(client, server, symbol, OPENING_SEQ + 300, ready))
        await ready.wait()
        stored = await publish_in_batches(client, server, symbol, 300)
    assert_opening_then(subscriber.result(), stored, symbol)


async def test_50_sse_subscribers_on_one_symbol_all_see_every_tick(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Fifty SSE streams on one symbol each receive all 100 published ticks, in order, once."""
    server, symbol = shared_server, own_symbol
    readies = [asyncio.Event() for _ in range(50)]
    async with new_client() as client, asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
        subscribers = [group.create_task(sse_subscriber(client, server, symbol, OPENING_SEQ + 100, r)) for r in readies]
        for ready in readies:
            await ready.wait()
        stored = await publish_in_batches(client, server, symbol, 100)
    for subscriber in subscribers:
        assert_opening_then(ticks_of_sse(subscriber.result()), stored, symbol)


async def test_50_websocket_subscribers_on_one_symbol_all_see_every_tick(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Fifty WebSocket clients on one symbol each receive all 100 published ticks, in order, once."""
    server, symbol = shared_server, own_symbol
    readies = [asyncio.Event() for _ in range(50)]
    async with new_client() as client, asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
        subscribers = [group.create_task(ws_subscriber(server, symbol, OPENING_SEQ + 100, r)) for r in readies]
        for ready in readies:
            await ready.wait()
        stored = await publish_in_batches(client, server, symbol, 100)
    for subscriber in subscribers:
        subscribed, *ticks = subscriber.result()
        assert subscribed["type"] == "subscribed"
        assert_opening_then(ticks_of_ws(ticks), stored, symbol)


async def test_poll_answers_304_while_unchanged_and_200_after_a_publish(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Polling with the last ETag costs an empty 304 until a tick lands; then 200 with that tick."""
    server, symbol = shared_server, own_symbol
    url = f"{server.url}/api/price/{symbol}"
    async with new_client() as client, asyncio.timeout(WAIT):
        first = await client.get(url)
        assert first.status_code == 200
        assert first.json()["seq"] == OPENING_SEQ
        etag = first.headers["ETag"]
        assert etag

        for _ in range(2):
            unchanged = await client.get(url, headers={"If-None-Match": etag})
            assert unchanged.status_code == 304
            assert unchanged.content == b""
            assert unchanged.headers["ETag"] == etag

        [stored] = await publish(client, server, symbol, [1234.5])
        changed = await client.get(url, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.json() == stored
        new_etag = changed.headers["ETag"]
        assert new_etag != etag

        again = await client.get(url, headers={"If-None-Match": new_etag})
        assert again.status_code == 304

        stale = await client.get(url, headers={"If-None-Match": etag})
        assert stale.status_code == 200
        assert stale.json() == stored
        assert stale.headers["ETag"] == new_etag

        made_up = await client.get(url, headers={"If-None-Match": '"not-an-etag"'})
        assert made_up.status_code == 200
        assert made_up.json() == stored


async def test_sse_sends_keep_alive_comments_while_no_tick_arrives(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """On a quiet symbol an SSE stream still carries `: keep-alive` comments, so proxies keep it open."""
    server, symbol = shared_server, own_symbol
    lines: list[str] = []
    async with (
        new_client() as client,
        asyncio.timeout(WAIT),
        client.stream("GET", f"{server.url}/api/stream/{symbol}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        async for line in response.aiter_lines():
            lines.append(line)
            if lines.count(": keep-alive") >= 3:
                break
    assert lines[0].startswith("retry: ")
    assert [line for line in lines if line.startswith("event:")] == ["event: tick"]
    [data] = [line for line in lines if line.startswith("data:")]
    assert json.loads(data.removeprefix("data:"))["seq"] == OPENING_SEQ
    assert lines.index("event: tick") < lines.index(": keep-alive")
