"""The mode clients, each against a real server: what a pane in each mode receives and what it costs.

Every story is bounded by `asyncio.timeout(WAIT)`: a lost tick or a hung reconnect fails there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from server.schema import Tick
from tests.helpers import RunningServer, free_port, prices, publish, running_client, start_server, until
from tui.modes import (
    MODES,
    Backoff,
    ConnectionState,
    LongPollClient,
    ModeClient,
    ModeStats,
    ServerClock,
    make_client,
)
from tui.modes.clock import is_loopback

SYMBOL = "RELIANCE"
WAIT = 30.0
"""Upper bound for any one story."""
FAST = Backoff(base=0.05, cap=0.2)
"""Quick retries, so reconnect stories take tenths of a second, not seconds."""
PUSH_MODES = ["longpoll", "sse", "ws"]
"""Modes that get every tick: the server hands them all, not just the latest."""
ALL_MODES = ["poll", *PUSH_MODES]


def recorder(client: ModeClient) -> list[Tick]:
    """Every tick the client hands on, in order."""
    seen: list[Tick] = []
    client.on_tick = seen.append
    return seen


def is_live(client: ModeClient) -> Callable[[], bool]:
    return lambda: client.state is ConnectionState.LIVE and client.stats.updates >= 1


def shows_seq(client: ModeClient, seq: int) -> Callable[[], bool]:
    return lambda: client.last_tick is not None and client.last_tick.seq == seq


async def server_stats(http: httpx.AsyncClient, server: RunningServer) -> dict[str, Any]:
    response = await http.get(server.url + "/api/stats")
    stats: dict[str, Any] = response.json()
    return stats


# -- the registry ---------------------------------------------------------------------------------


def test_the_app_cycles_modes_in_the_documented_order() -> None:
    assert list(MODES) == ["poll", "longpoll", "sse", "ws", "webhook"]
    assert all(MODES[name].mode == name and MODES[name].title for name in MODES)


def test_each_mode_explains_itself() -> None:
    explained = {name: make_client(name, "http://x", SYMBOL, poll_interval=0.5).explain() for name in MODES}
    assert explained == {
        "poll": "asks every 0.5 s",
        "longpoll": "holds a request until a tick arrives",
        "sse": "one open stream; the server pushes",
        "ws": "one open socket; the server pushes",
        "webhook": "the server calls us; we verify each call",
    }


def test_an_unknown_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown mode 'carrier-pigeon'"):
        make_client("carrier-pigeon", "http://x", SYMBOL)


# -- receiving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", PUSH_MODES)
async def test_a_push_pane_gets_every_tick_in_order_once(
    shared_server: RunningServer, own_symbol: str, mode: str
) -> None:
    server, symbol = shared_server, own_symbol
    count = 60
    client = make_client(mode, server.url, symbol, backoff=FAST)
    seen = recorder(client)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        stored = await publish(http, server, symbol, prices(count // 2))
        await until(lambda: client.stats.updates == 1 + count // 2)
        stored += await publish(http, server, symbol, prices(count // 2, start=2000.0))
        await until(lambda: client.stats.updates == 1 + count)
        if mode != "longpoll":  # a long poll's connection is held only between answers
            assert client.stats.open_connections == 1
    stats = client.stats
    assert [t.seq for t in seen] == [1, *(t["seq"] for t in stored)]  # the opening tick, then all of ours
    assert [t.price for t in seen[1:]] == [t["price"] for t in stored]
    assert (stats.updates, stats.missed, stats.duplicates, stats.gaps) == (count + 1, 0, 0, 0)
    assert stats.last_delay_ms is not None and math.isfinite(stats.delay_percentile(0.95))
    assert stats.bytes_received > 0
    if mode == "longpoll":
        assert stats.requests >= 3  # the latest tick, then at least one answer per batch
    else:
        assert stats.requests == 1  # one connection carried everything
    assert client.state is ConnectionState.STOPPED and stats.open_connections == 0


async def test_a_poll_pane_gets_each_tick_it_waits_for(shared_server: RunningServer, own_symbol: str) -> None:
    server, symbol = shared_server, own_symbol
    client = make_client("poll", server.url, symbol, poll_interval=0.05, backoff=FAST)
    seen = recorder(client)
    stored: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        for price in prices(5):
            stored += await publish(http, server, symbol, [price])
            await until(shows_seq(client, stored[-1]["seq"]))
    stats = client.stats
    assert [t.seq for t in seen] == [1, *(t["seq"] for t in stored)]
    assert (stats.updates, stats.missed, stats.duplicates) == (6, 0, 0)
    assert stats.last_delay_ms is not None and stats.bytes_received > 0
    assert stats.requests == stats.updates + stats.empty_responses  # each answer: a tick or a 304
    assert stats.open_connections == 0


async def test_polling_slower_than_the_feed_misses_ticks_and_idles_on_304(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server, symbol = shared_server, own_symbol
    client = make_client("poll", server.url, symbol, poll_interval=0.2, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        stored = await publish(http, server, symbol, prices(20))  # 20 ticks between two polls
        await until(shows_seq(client, stored[-1]["seq"]))
        assert client.stats.missed > 0
        assert client.stats.updates < 1 + len(stored)
        idle_from = client.stats.empty_responses
        await until(lambda: client.stats.empty_responses >= idle_from + 2)  # nothing new: 304s
        empty_seen = client.stats.empty_responses
        server_side = (await server_stats(http, server))["transports"]["poll"]
    stats = client.stats
    assert stats.updates + stats.missed == 1 + len(stored)  # every tick either seen or counted missed
    assert stats.requests == stats.updates + stats.empty_responses
    assert server_side["empty_responses"] >= empty_seen


async def test_a_new_poll_interval_applies_at_once_and_what_came_before_it_is_not_missed(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """The app sets the interval and resets the counters from the UI's thread: the wait for the old
    beat is cut short, and the ticks published before the change are not counted as missed."""
    server, symbol = shared_server, own_symbol
    client = make_client("poll", server.url, symbol, poll_interval=30.0, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        before = await publish(http, server, symbol, prices(5))  # while it waits 30 s for its next poll

        def change() -> None:  # as the app does, on another thread than the client's
            client.poll_interval = 0.1
            client.reset_stats()

        await asyncio.to_thread(change)
        await until(shows_seq(client, before[-1]["seq"]), timeout=10.0)  # not 30 s later
        assert (client.stats.updates, client.stats.missed) == (1, 0)  # those 4 went by before the reset
        after = await publish(http, server, symbol, prices(3, start=2000.0))  # one batch: a poll sees the last
        await until(shows_seq(client, after[-1]["seq"]))
    assert client.stats.updates + client.stats.missed == 1 + len(after)  # from the reset on, every tick counted


async def test_after_a_reset_answered_304_every_tick_published_is_counted(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """A reset's poll that finds nothing new says the gap across the reset is empty: the ticks
    published after it are the new count's to see or miss."""
    server, symbol = shared_server, own_symbol
    client = make_client("poll", server.url, symbol, poll_interval=30.0, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        await asyncio.to_thread(client.reset_stats)
        await until(lambda: client.stats.empty_responses == 1, timeout=10.0)  # the reset's poll: a 304
        after = await publish(http, server, symbol, prices(3, start=3000.0))
        await asyncio.to_thread(setattr, client, "poll_interval", 0.1)
        await until(shows_seq(client, after[-1]["seq"]))
    assert (client.stats.updates, client.stats.missed) == (1, 2)


async def test_a_long_poll_that_runs_out_counts_an_empty_answer(shared_server: RunningServer, own_symbol: str) -> None:
    server, symbol = shared_server, own_symbol
    client = LongPollClient(server.url, symbol, hold_timeout=1.0, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(is_live(client))
        await until(lambda: client.stats.open_connections == 1)  # our next request is being held
        await until(lambda: client.stats.empty_responses >= 1)
        server_side = (await server_stats(http, server))["transports"]["longpoll"]
        stored = await publish(http, server, symbol, prices(1))
        await until(lambda: client.stats.updates == 2)
    stats = client.stats
    assert server_side["empty_responses"] >= 1
    assert client.last_tick is not None and client.last_tick.seq == stored[0]["seq"]
    assert stats.requests >= 3 and stats.missed == 0 and stats.gaps == 0


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_an_unknown_symbol_says_so(shared_server: RunningServer, mode: str) -> None:
    server = shared_server
    client = make_client(mode, server.url, "NOPE", backoff=FAST)
    async with asyncio.timeout(WAIT), running_client(client):
        await until(lambda: client.error is not None)
        assert client.state is not ConnectionState.LIVE
    assert "unknown symbol" in (client.error or "")
    assert client.stats.updates == 0


# -- losing the server -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_a_pane_resumes_after_the_server_restarts_on_the_same_port(mode: str) -> None:
    quiet = ("--no-feed", "--heartbeat", "0.5")
    first = await asyncio.to_thread(start_server, *quiet)
    port = urlsplit(first.url).port
    assert port is not None
    servers = [first]
    # Many retries before "unreachable": the story watches it go reconnecting, then live.
    client = make_client(
        mode, first.url, SYMBOL, poll_interval=0.05, backoff=Backoff(base=0.05, cap=0.2, unreachable_after=1000)
    )
    try:
        async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
            await until(is_live(client))
            stored = await publish(http, first, SYMBOL, prices(1))
            await until(lambda: client.stats.updates == 2)
            old_epoch = client.epoch

            await asyncio.to_thread(first.stop)
            await until(lambda: client.state is ConnectionState.RECONNECTING)
            assert client.error is not None

            second = await asyncio.to_thread(start_server, *quiet, port=port)
            servers.append(second)
            await until(lambda: client.state is ConnectionState.LIVE and client.epoch not in (None, old_epoch))
            stored = await publish(http, second, SYMBOL, prices(1, start=3000.0))
            await until(lambda: client.last_tick is not None and client.last_tick.price == stored[0]["price"])
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
    stats = client.stats
    assert stats.reconnects >= 1
    assert stats.gaps == 1  # one new epoch, counted once however the mode is told
    assert stats.duplicates == 0 and stats.missed == 0
    assert stats.updates == 4  # opening + one tick per server; the second's opening tick when it resumed
    assert stats.requests >= 2


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_a_pane_with_no_server_ends_up_unreachable_and_says_when_it_retries(mode: str) -> None:
    client = make_client(mode, f"http://127.0.0.1:{free_port()}", SYMBOL, backoff=Backoff(base=0.05, cap=0.1))
    async with asyncio.timeout(WAIT), running_client(client):
        await until(lambda: client.state is ConnectionState.UNREACHABLE and client.retry_in() is not None)
        retry_in = client.retry_in()
        assert isinstance(retry_in, float) and 0.0 <= retry_in <= 0.1
        assert client.error == "connection refused"
    assert client.state is ConnectionState.STOPPED and client.retry_in() is None
    assert client.stats.requests == 0 and client.stats.updates == 0


# -- stopping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "cancel"])
@pytest.mark.parametrize("mode", ALL_MODES)
async def test_stopping_a_pane_ends_it_at_once(shared_server: RunningServer, mode: str, how: str) -> None:
    server = shared_server
    client = make_client(mode, server.url, SYMBOL, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        task = asyncio.create_task(client.run())
        await until(is_live(client))
        if how == "stop":
            await client.stop()
            await task  # returns: stop() interrupts even a read that would block for a long time
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert client.state is ConnectionState.STOPPED
        assert client.stats.open_connections == 0
        if mode in ("sse", "ws"):  # the server sees the stream or socket closed, not just our counter
            await server_sees_no_connection(http, server, mode)


async def server_sees_no_connection(
    http: httpx.AsyncClient, server: RunningServer, mode: str, timeout: float = WAIT
) -> None:
    async def none_open() -> bool:
        open_connections: int = (await server_stats(http, server))["transports"][mode]["open_connections"]
        return open_connections == 0

    await until(none_open, timeout=timeout, step=0.02)


async def test_a_long_poll_pane_that_leaves_frees_its_server_slot(shared_server: RunningServer) -> None:
    server = shared_server
    client = make_client("longpoll", server.url, SYMBOL, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        async with running_client(client):
            await until(is_live(client))
            await until(lambda: client.stats.open_connections == 1)
        assert client.state is ConnectionState.STOPPED and client.stats.open_connections == 0
        await server_sees_no_connection(http, server, "longpoll", timeout=3.0)  # not its 25 s hold


# -- stats and clock ----------------------------------------------------------------------------------


def test_delay_percentiles_are_nearest_rank_on_known_data() -> None:
    stats = ModeStats(all_delays_ms=[])
    assert math.isnan(stats.delay_percentile(0.5))
    delays = [float(n) for n in range(1, 101)]
    random.Random(7).shuffle(delays)
    for delay in delays:
        stats.record_delay(delay)
    assert [stats.delay_percentile(f) for f in (0.0, 0.5, 0.95, 0.99, 1.0)] == [1.0, 50.0, 95.0, 99.0, 100.0]
    assert stats.last_delay_ms == delays[-1]


def test_percentiles_roll_over_the_recent_window_but_the_bench_keeps_all() -> None:
    stats = ModeStats(all_delays_ms=[])
    for n in range(1, 601):  # past the 500-delay window
        stats.record_delay(float(n))
    assert stats.delay_percentile(0.0) == 101.0 and stats.delay_percentile(1.0) == 600.0
    assert stats.all_delays_ms == [float(n) for n in range(1, 601)]
    stats.reset()
    assert stats.updates == 0 and math.isnan(stats.delay_percentile(0.5)) and stats.all_delays_ms == []


async def test_the_clock_offset_to_a_server_on_loopback_is_zero(shared_server: RunningServer) -> None:
    """Same machine, same clock: no estimate (its error would be as large as a push delay)."""
    server = shared_server
    clock = ServerClock(offset=3.0)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        offset = await clock.sync(http, server.url)
    assert offset == 0.0 and clock.offset == 0.0
    assert clock.round_trip is None  # nothing to estimate, so nothing asked


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.8.9.1", True),
        ("http://[::1]:8000", True),
        ("http://localhost:8000", True),
        ("http://10.0.0.5:8000", False),
        ("http://example.org", False),
    ],
)
def test_only_a_loopback_server_counts_as_sharing_our_clock(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_the_clock_reads_the_injected_local_clock_plus_the_offset() -> None:
    assert ServerClock(local=lambda: 1000.0, offset=5.0).now() == 1005.0


@pytest.fixture(scope="module")
def short_history_server() -> Iterator[RunningServer]:
    """A quiet server keeping 5 ticks per symbol, with a symbol per push mode (each story its own)."""
    with start_server("--no-feed", "--history", "5", "--symbols", ",".join(m.upper() for m in PUSH_MODES)) as server:
        yield server


@pytest.mark.parametrize("mode", PUSH_MODES)
async def test_ticks_skipped_past_a_short_history_count_as_missed(
    short_history_server: RunningServer, mode: str
) -> None:
    """A paused pane whose cursor fell out of history resumes with a gap and the latest tick; the
    ticks in between, same epoch, are counted missed rather than silently dropped."""
    small, symbol = short_history_server, mode.upper()
    client = make_client(mode, small.url, symbol, backoff=FAST)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        paused = asyncio.create_task(client.run())
        await until(is_live(client))
        paused.cancel()  # how a pane pauses (see tui/runner.py): the client keeps its cursor
        with contextlib.suppress(asyncio.CancelledError):
            await paused
        stored = await publish(http, small, symbol, prices(20))
        async with running_client(client):
            await until(shows_seq(client, stored[-1]["seq"]))
    stats = client.stats
    assert stats.gaps == 1 and stats.duplicates == 0
    assert stats.missed == 19 and stats.updates == 2, (stats.missed, stats.updates)  # opening tick, then the latest
