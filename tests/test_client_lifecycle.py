"""A mode client's life on its own thread: a bug is a FAILED state with its traceback logged, never
a silent reconnect loop; stopping one never waits on the caller's (the UI's) thread."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx
import pytest

from server.schema import Tick
from tests.helpers import RunningServer, publish, until
from tui.modes import ConnectionState, make_client
from tui.runner import ClientThread


@pytest.mark.parametrize("mode", ["poll", "longpoll", "sse", "ws"])
async def test_a_bug_in_a_client_stops_it_in_the_failed_state_with_the_traceback_logged(
    shared_server: RunningServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = shared_server

    def broken_listener(tick: Tick) -> None:
        raise TypeError(f"cannot take tick {tick.seq}")

    client = make_client(mode, server.url, "INFY", on_tick=broken_listener, poll_interval=0.05)
    with caplog.at_level(logging.ERROR, logger="pushpull.modes"):
        await asyncio.wait_for(client.run(), 20)  # it ends by itself: a bug is not retried
    assert client.state is ConnectionState.FAILED
    assert client.error is not None and client.error.startswith("TypeError: cannot take tick")
    assert client.stats.reconnects == 0
    [record] = [r for r in caplog.records if r.name == "pushpull.modes"]
    assert record.exc_info is not None and record.exc_info[0] is TypeError


async def test_stopping_a_client_thread_returns_before_the_client_has_closed(server: RunningServer) -> None:
    """A WebSocket client closing against a frozen server waits for the close handshake: the
    caller must not. Freezing the server (SIGSTOP) makes "still closing" certain, not a race."""
    client = make_client("ws", server.url, "SBIN")
    runner = ClientThread(client)
    runner.start()
    await until(lambda: client.state is ConnectionState.LIVE)
    assert server.process.pid > 0
    server.process.send_signal(signal.SIGSTOP)
    try:
        runner.stop()
        assert runner.running  # stop() asked; the thread is still closing its socket
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert await asyncio.to_thread(runner.join, 10.0)
    assert client.state is ConnectionState.STOPPED


async def test_a_resumed_client_waits_for_its_previous_run_and_loses_nothing(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server = shared_server
    client = make_client("sse", server.url, own_symbol)
    first = ClientThread(client)
    first.start()
    await until(lambda: client.state is ConnectionState.LIVE)
    async with httpx.AsyncClient() as http:
        await publish(http, server, own_symbol, [1500.0, 1500.05])
        await until(lambda: client.stats.updates == 3)
        first.stop()
        second = ClientThread(client, after=first)
        second.start()
        await publish(http, server, own_symbol, [1500.10, 1500.15])
        await until(lambda: client.stats.updates == 5)
    second.stop()
    assert await asyncio.to_thread(second.join, 10.0)
    assert not first.running
    assert (client.stats.missed, client.stats.duplicates) == (0, 0)
