"""A new user's first minute: the server answers and a tick can be published and read back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import websockets
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.helpers import RunningServer, prices, publish

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""


async def test_published_tick_is_the_latest_price(shared_server: RunningServer, own_symbol: str) -> None:
    server = shared_server
    async with httpx.AsyncClient() as client:
        stored = await publish(client, server, own_symbol, prices(3))
        response = await client.get(f"{server.url}/api/price/{own_symbol}")
    assert response.status_code == 200
    assert response.json() == stored[-1]
    assert [t["seq"] for t in stored] == [2, 3, 4]


async def test_the_fast_path_writes_straight_to_the_socket_and_the_portable_path_delivers_the_same(
    shared_server: RunningServer, own_symbol: str, serving_path: str
) -> None:
    """On the fast path (server/fast_path.py) the hub writes each tick to SSE and WebSocket
    sockets itself and short answers go out in one write: counted, so a uvicorn whose internals
    changed is noticed. Turned off, the same ticks arrive by plain ASGI and nothing is counted."""
    server, symbol, count = shared_server, own_symbol, 5
    fast = serving_path != "portable path"
    async with (
        asyncio.timeout(20),
        httpx.AsyncClient(timeout=None) as client,
        aconnect_sse(client, "GET", f"{server.url}/api/stream/{symbol}") as events,
        websockets.connect(server.ws_url) as socket,
    ):
        sse = events.aiter_sse()
        assert len([e async for e in take_ticks(sse, 1)]) == 1  # the opening tick (after the `retry:` field)
        await socket.send(json.dumps({"op": "subscribe", "symbols": [symbol]}))
        assert json.loads(await socket.recv())["type"] == "subscribed"
        assert json.loads(await socket.recv())["type"] == "tick"
        before = (await client.get(server.url + "/api/stats")).json()
        stored = await publish(client, server, symbol, prices(count))
        sse_seqs = [json.loads(e.data)["seq"] async for e in take_ticks(sse, count)]
        ws_seqs = [json.loads(await socket.recv())["seq"] for _ in range(count)]
        assert sse_seqs == ws_seqs == [t["seq"] for t in stored]
        for path in (f"/api/price/{symbol}", f"/api/longpoll/{symbol}?after=1"):
            assert (await client.get(server.url + path)).status_code == 200
        after = (await client.get(server.url + "/api/stats")).json()
    assert after["fast_path"]["on"] is fast, after["fast_path"]
    transports = {name: after["transports"][name] for name in ("poll", "longpoll", "sse", "ws")}
    written = {name: t["direct_writes"] - before["transports"][name]["direct_writes"] for name, t in transports.items()}
    if fast:
        assert written["sse"] >= count and written["ws"] >= count, written  # (SSE heartbeats count too)
        assert written["poll"] >= 1 and written["longpoll"] >= 1, written
        assert transports["sse"]["direct_connections"] >= 1 and transports["ws"]["direct_connections"] >= 1
    else:
        assert all(t["direct_writes"] == 0 and t["direct_connections"] == 0 for t in transports.values()), transports


async def take_ticks(events: AsyncIterator[ServerSentEvent], count: int) -> AsyncIterator[ServerSentEvent]:
    """The next `count` tick events (heartbeat comments are not events)."""
    taken = 0
    async for event in events:
        if event.event == "tick":
            yield event
            taken += 1
            if taken == count:
                return
