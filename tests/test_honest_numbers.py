"""The figures tell the truth in every state: a pause is not a delay nor a miss, an interval change
starts poll's figures afresh, a shutting-down server is not asked again at once."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from tests.helpers import RunningServer, ServerFactory, publish, until
from tui.app import PushPullApp
from tui.modes import Backoff, ConnectionState, ModeClient, make_client
from tui.runner import ClientThread


async def paused_while_published(client: ModeClient, server: RunningServer, symbol: str, count: int) -> None:
    """Run the client, pause it, publish `count` ticks, resume it as a pane does, and stop it once
    it has seen the last one."""
    runner = ClientThread(client)
    runner.start()
    await until(lambda: client.state is ConnectionState.LIVE and client.stats.updates >= 1)
    runner.stop()
    assert await asyncio.to_thread(runner.join, 10.0)
    async with httpx.AsyncClient() as http:
        stored = await publish(http, server, symbol, [2000.0 + 0.05 * i for i in range(count)])
    client.resume_after_pause()
    resumed = ClientThread(client, after=runner)
    resumed.start()
    await until(lambda: client.last_tick is not None and client.last_tick.seq == stored[-1]["seq"])
    resumed.stop()
    assert await asyncio.to_thread(resumed.join, 10.0)


@pytest.mark.parametrize("mode", ["longpoll", "sse", "ws"])
async def test_ticks_replayed_after_a_pause_are_counted_as_replayed_not_as_delay(
    shared_server: RunningServer, own_symbol: str, mode: str
) -> None:
    client = make_client(mode, shared_server.url, own_symbol)
    await paused_while_published(client, shared_server, own_symbol, 20)
    stats = client.stats
    assert stats.replayed == 20
    assert stats.missed == 0
    assert len(stats.delays_ms) == 0  # the first tick is the latest (no delay); the rest replayed


async def test_poll_does_not_count_what_was_published_while_paused_as_missed(
    shared_server: RunningServer, own_symbol: str
) -> None:
    client = make_client("poll", shared_server.url, own_symbol, poll_interval=0.05)
    await paused_while_published(client, shared_server, own_symbol, 20)
    assert client.stats.missed == 0
    assert client.stats.replayed == 0


async def test_changing_the_poll_interval_starts_poll_figures_afresh(shared_server: RunningServer) -> None:
    app = PushPullApp(shared_server.url, modes=["poll", "sse"], poll_interval=0.05, stats_interval=None)
    async with asyncio.timeout(30), app.run_test(size=(160, 45), notifications=True) as pilot:
        poll, sse = app.panes
        await until(lambda: poll.client.stats.requests >= 5 and sse.client.state is ConnectionState.LIVE)
        sse_requests = sse.client.stats.requests
        await pilot.press("plus")
        assert app.poll_interval == 0.1
        assert poll.client.poll_interval == 0.1
        assert poll.client.stats.requests < 5  # started afresh (a poll may have landed since)
        assert sse.client.stats.requests == sse_requests  # other modes keep theirs
        assert any("start afresh" in str(n.message) for n in app._notifications)


async def test_a_long_poll_held_at_shutdown_is_answered_503_with_retry_after(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        latest = (await http.get(server.url + "/api/price/SBIN")).json()
        held = asyncio.create_task(
            http.get(server.url + "/api/longpoll/SBIN", params={"after": latest["seq"], "timeout": 30})
        )
        await until(
            lambda: httpx.get(server.url + "/api/stats").json()["transports"]["longpoll"]["open_connections"] == 1
        )
        server.process.terminate()
        response = await held
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"detail": "the server is shutting down"}


async def test_a_long_poll_client_backs_off_from_a_server_that_answers_204_without_holding() -> None:
    """Not our server (it holds): a proxy that cuts every request short. The client must not ask
    again at once, over and over."""
    arrivals: list[float] = []

    async def impatient(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                arrivals.append(asyncio.get_running_loop().time())
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    listener = await asyncio.start_server(impatient, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    client = make_client("longpoll", url, "TCS", backoff=Backoff(base=0.1, cap=0.2))
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: client.stats.empty_responses >= 6)  # (counted by the client: 6 arrived)
    finally:
        await client.stop()
        await asyncio.wait_for(task, 10)
        listener.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # The first two empties are taken as they come; from then on each waits its backoff (at least
    # half of the 0.1 s base, doubling), so the gaps are bounded below, however slow the machine.
    # (On average: an answer delayed past 1 s by a stalled machine counts as held and starts over.)
    later = gaps[2:]
    assert sum(later) >= 0.05 * len(later), gaps
    assert client.stats.empty_responses >= 6


def test_the_bench_prints_no_percentile_from_too_few_samples() -> None:
    from tui.bench import samples_needed

    assert samples_needed(0.5) == 10 and samples_needed(0.95) == 100 and samples_needed(0.99) == 500


@pytest.mark.parametrize("mode", ["longpoll", "sse", "ws"])
async def test_a_pause_longer_than_the_servers_history_is_a_gap_not_misses(
    server_factory: ServerFactory, mode: str
) -> None:
    short = server_factory("--no-feed", "--history", "10")
    client = make_client(mode, short.url, "HDFCBANK")
    await paused_while_published(client, short, "HDFCBANK", 30)  # 30 published, 10 kept
    assert client.stats.gaps == 1  # said, once
    assert client.stats.missed == 0  # published while paused: not this mode's miss
