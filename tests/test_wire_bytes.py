"""Wire bytes are what an independent measurement says: a TCP relay between a client and the server
counts every byte each way, and the client's own figures must match it. (The lesson they carry,
that polling fast costs more bytes per update than a stream, is shown in the app: test_app_screen.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from tests.helpers import RunningServer, prices, publish, until
from tui.modes import ConnectionState, make_client


@dataclass
class Relay:
    """Forwards TCP connections to the server and counts the bytes each way."""

    url: str = ""
    up: int = 0
    """Client to server."""
    down: int = 0
    """Server to client."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Callable[[int], None]) -> None:
    try:
        while data := await reader.read(65536):
            count(len(data))
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def relay_to(server: RunningServer) -> AsyncIterator[Relay]:
    relay = Relay()
    target = httpx.URL(server.url)

    async def on_connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(target.host, target.port)

        def up(n: int) -> None:
            relay.up += n

        def down(n: int) -> None:
            relay.down += n

        with contextlib.suppress(asyncio.CancelledError):  # the test ended with it open
            await asyncio.gather(pump(client_reader, server_writer, up), pump(server_reader, client_writer, down))

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    relay.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        yield relay
    finally:
        listener.close()


@pytest.mark.parametrize("mode", ["poll", "longpoll", "sse", "ws"])
async def test_a_clients_wire_bytes_equal_what_a_relay_counted(
    shared_server: RunningServer, own_symbol: str, mode: str
) -> None:
    server = shared_server
    async with relay_to(server) as relay:
        client = make_client(mode, relay.url, own_symbol, poll_interval=0.05)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.state is ConnectionState.LIVE)
            async with httpx.AsyncClient() as http:
                for price in prices(5, 3400.0):
                    stored = await publish(http, server, own_symbol, [price])
                    await until(lambda seq=stored[0]["seq"]: client.cursor == seq)
            stats = client.stats
            # Compared while the connection is still open (a close frame or chunk terminator
            # would come after); the relay may lag the client by a write, so wait for it to agree.
            with contextlib.suppress(TimeoutError):
                await until(
                    lambda: (stats.wire_bytes_sent, stats.wire_bytes_received) == (relay.up, relay.down), timeout=5
                )
            assert (stats.wire_bytes_sent, stats.wire_bytes_received) == (relay.up, relay.down)
            assert stats.wire_bytes_received > stats.bytes_received  # headers and framing are on the wire too
        finally:
            await client.stop()
            await asyncio.wait_for(task, 10)
