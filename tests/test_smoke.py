"""A new user's first minute: the server answers and a tick can be published and read back."""

from __future__ import annotations

import asyncio

import httpx
import websockets
from httpx_sse import aconnect_sse

from tests.helpers import RunningServer, prices, publish


async def test_published_tick_is_the_latest_price(shared_server: RunningServer, own_symbol: str) -> None:
    server = shared_server
    async with httpx.AsyncClient() as client:
        stored = await publish(client, server, own_symbol, prices(3))
        response = await client.get(f"{server.url}/api/price/{own_symbol}")
    assert response.status_code == 200
    assert response.json() == stored[-1]
    assert [t["seq"] for t in stored] == [2, 3, 4]


async def test_streams_are_written_straight_to_the_socket(shared_server: RunningServer) -> None:
    """The fan-out's fast path (server/outlets.py) is in use: if uvicorn's internals change, this says so."""
    server = shared_server
    async with (
        asyncio.timeout(20),
        httpx.AsyncClient(timeout=None) as client,
        aconnect_sse(client, "GET", server.url + "/api/stream/RELIANCE") as events,
    ):
        async for event in events.aiter_sse():
            if event.event == "tick":
                break
        async with websockets.connect(server.ws_url) as socket:
            await socket.send('{"op": "subscribe", "symbols": ["RELIANCE"]}')
            assert '"subscribed"' in str(await socket.recv())
            stats = (await client.get(server.url + "/api/stats")).json()["transports"]
    assert stats["sse"]["direct_connections"] == 1
    assert stats["ws"]["direct_connections"] == 1
