"""WebSocket framing and lifecycle: the same on the fast path (our own protocol on the socket) and
the portable one (ASGI through uvicorn), since the module runs on both (see conftest)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import RunningServer, ServerFactory, prices, publish, until

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

WAIT = 10


async def message(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        decoded: dict[str, Any] = json.loads(await socket.recv())
    return decoded


async def test_an_op_sent_in_fragments_is_answered_as_a_whole(shared_server: RunningServer, own_symbol: str) -> None:
    async with connect(shared_server.ws_url) as socket:
        await socket.send(['{"op": "subscribe", ', f'"symbols": ["{own_symbol}"]', "}"])  # three frames
        subscribed = await message(socket)
        assert (subscribed["type"], subscribed["symbols"]) == ("subscribed", [own_symbol])
        assert (await message(socket))["seq"] == 1


async def test_a_client_ping_is_answered_with_a_pong_and_the_socket_stays_usable(
    shared_server: RunningServer, own_symbol: str
) -> None:
    async with connect(shared_server.ws_url, ping_interval=None) as socket:
        pong = await socket.ping(b"are you there")
        await asyncio.wait_for(pong, WAIT)  # a TimeoutError here: no pong came
        await socket.send(json.dumps({"op": "subscribe", "symbols": [own_symbol]}))
        assert (await message(socket))["type"] == "subscribed"
        assert (await message(socket))["seq"] == 1


async def test_an_unknown_websocket_path_is_refused_with_404(shared_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(WAIT), connect(shared_server.ws_url.removesuffix("/ws") + "/wss"):
            pass
    assert refused.value.response.status_code == 404


async def test_a_client_that_closes_is_counted_out_and_its_neighbour_keeps_receiving(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server, symbol = shared_server, own_symbol
    subscribe = json.dumps({"op": "subscribe", "symbols": [symbol]})
    async with httpx.AsyncClient(timeout=WAIT) as client, connect(server.ws_url) as neighbour:
        await neighbour.send(subscribe)
        assert (await message(neighbour))["type"] == "subscribed" and (await message(neighbour))["seq"] == 1

        async def open_sockets() -> int:
            count: int = (await client.get(server.url + "/api/stats")).json()["transports"]["ws"]["open_connections"]
            return count

        before = await open_sockets()
        async with connect(server.ws_url) as leaving:
            await leaving.send(subscribe)
            assert (await message(leaving))["type"] == "subscribed"
            assert await open_sockets() == before + 1

        async def counted_out() -> bool:
            return await open_sockets() == before

        await until(counted_out, timeout=WAIT, step=0.02)
        stored = await publish(client, server, symbol, prices(3))
        assert [(await message(neighbour))["seq"] for _ in stored] == [t["seq"] for t in stored]


async def test_shutdown_closes_every_socket_with_1012(server_factory: ServerFactory) -> None:
    """SIGTERM: each open socket gets a close frame saying the server is going away for a restart,
    and the server exits 0."""
    server = server_factory("--no-feed", "--symbols", "TCS")
    sockets = [await connect(server.ws_url) for _ in range(3)]
    for socket in sockets:
        await socket.send('{"op": "subscribe", "symbols": ["TCS"]}')
        assert (await message(socket))["type"] == "subscribed"
    server.process.send_signal(signal.SIGTERM)
    for socket in sockets:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
    code, output = await asyncio.to_thread(server.wait, WAIT)  # (not stop(): a second SIGTERM forces the exit)
    assert code == 0 and "Traceback" not in output, output
