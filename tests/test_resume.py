"""A client that drops out comes back with its cursor: nothing lost, nothing twice, or a clear gap.

The common story: a subscriber watches ticks 1..50 live and leaves; 100 more are published while
it is away; it comes back with its cursor and gets 51..150 exactly once, in order, and then the
next live tick. When its cursor cannot be honoured (older than history, another epoch, a restarted
server) it gets a gap signal and the latest tick at once, never a hang.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import RunningServer, ServerFactory, prices, publish, start_server

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

SYMBOL = "RELIANCE"
WAIT = 30.0
"""Upper bound for any one story; a missing tick or a hung resume fails here."""
SEEN = 50
"""The last seq the subscriber saw before it left."""
AWAY = 100
"""Ticks published while it was away: it should resume with SEEN+1 .. SEEN+AWAY."""
SHORT_HISTORY = 20

Tick = dict[str, Any]


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(WAIT))


async def publish_prices(
    client: httpx.AsyncClient, server: RunningServer, count: int, start: float, symbol: str = SYMBOL
) -> list[Tick]:
    return await publish(client, server, symbol, prices(count, start))


async def epoch_of(client: httpx.AsyncClient, server: RunningServer) -> str:
    response = await client.get(server.url + "/api/stats")
    epoch: str = response.json()["epoch"]
    return epoch


def stream_url(server: RunningServer, symbol: str = SYMBOL) -> str:
    return f"{server.url}/api/stream/{symbol}"


def longpoll_url(server: RunningServer, symbol: str = SYMBOL) -> str:
    return f"{server.url}/api/longpoll/{symbol}"


async def sse_events(source: EventSource) -> AsyncGenerator[ServerSentEvent, None]:
    """The stream's events as a browser dispatches them: none for the `retry:` block or a heartbeat.

    httpx-sse yields an empty event for those (it keeps the last id across a comment's blank line).
    """
    async for event in source.aiter_sse():
        if event.data:
            yield event


def sse_tick(event: ServerSentEvent) -> Tick:
    """The tick an SSE event carries, checking its type and its `<epoch>:<seq>` id."""
    assert event.event == "tick", (event.event, event.data)
    tick: Tick = event.json()
    assert event.id == f"{tick['epoch']}:{tick['seq']}"
    return tick


async def ws_frame(websocket: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await websocket.recv())
    return frame


def ws_tick(frame: dict[str, Any]) -> Tick:
    assert frame["type"] == "tick", frame
    return {k: v for k, v in frame.items() if k != "type"}


# --- lossless resume -------------------------------------------------------------------------


async def sse_watch_until_seen(client: httpx.AsyncClient, server: RunningServer, symbol: str) -> str:
    """An SSE subscriber watches ticks 1..SEEN live, then disconnects; returns its last event id."""
    async with (
        aconnect_sse(client, "GET", stream_url(server, symbol)) as source,
        aclosing(sse_events(source)) as events,
    ):
        assert sse_tick(await anext(events))["seq"] == 1
        await publish_prices(client, server, SEEN - 1, 1000.0, symbol)
        last = None
        for expected_seq in range(2, SEEN + 1):
            last = await anext(events)
            assert sse_tick(last)["seq"] == expected_seq
    assert last is not None and last.id is not None
    return last.id


async def sse_resume_and_check(
    client: httpx.AsyncClient,
    server: RunningServer,
    symbol: str,
    away: list[Tick],
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> None:
    """Reconnect with a cursor: exactly the ticks published while away, then the next live one."""
    async with (
        aconnect_sse(client, "GET", stream_url(server, symbol), headers=dict(headers or {}), params=params) as source,
        aclosing(sse_events(source)) as events,
    ):
        resumed = [sse_tick(await anext(events)) for _ in away]
        assert resumed == away
        [live] = await publish_prices(client, server, 1, 3000.0, symbol)
        assert sse_tick(await anext(events)) == live


async def test_sse_client_resumes_with_last_event_id_header_without_loss_or_duplicates(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Reconnecting with `Last-Event-ID: <epoch>:50` replays 51..150 once each, then goes live."""
    server, symbol = shared_server, own_symbol
    async with new_client() as client, asyncio.timeout(WAIT):
        last_id = await sse_watch_until_seen(client, server, symbol)
        assert last_id == f"{await epoch_of(client, server)}:{SEEN}"
        away = await publish_prices(client, server, AWAY, 2000.0, symbol)
        assert [t["seq"] for t in away] == list(range(SEEN + 1, SEEN + AWAY + 1))
        await sse_resume_and_check(client, server, symbol, away, headers={"Last-Event-ID": last_id})


async def test_sse_client_resumes_with_last_event_id_query_parameter(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """A browser's first connect cannot set the header: `?last_event_id=` resumes just the same."""
    server, symbol = shared_server, own_symbol
    async with new_client() as client, asyncio.timeout(WAIT):
        last_id = await sse_watch_until_seen(client, server, symbol)
        away = await publish_prices(client, server, AWAY, 2000.0, symbol)
        await sse_resume_and_check(client, server, symbol, away, params={"last_event_id": last_id})


async def test_sse_last_event_id_header_wins_over_the_query_parameter(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Given both, the header (the browser's own reconnect) decides where the stream resumes."""
    server, symbol = shared_server, own_symbol
    async with new_client() as client, asyncio.timeout(WAIT):
        last_id = await sse_watch_until_seen(client, server, symbol)
        away = await publish_prices(client, server, AWAY, 2000.0, symbol)
        await sse_resume_and_check(
            client, server, symbol, away, headers={"Last-Event-ID": last_id}, params={"last_event_id": "other:3"}
        )


async def test_websocket_client_resumes_with_after_without_loss_or_duplicates(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Resubscribing with `after: {<symbol>: 50}` and the epoch replays 51..150 once, then goes live."""
    server, symbol = shared_server, own_symbol
    async with new_client() as client, asyncio.timeout(WAIT):
        async with connect(server.ws_url) as websocket:
            await websocket.send(json.dumps({"op": "subscribe", "symbols": [symbol]}))
            subscribed = await ws_frame(websocket)
            assert subscribed["type"] == "subscribed"
            epoch = subscribed["epoch"]
            assert ws_tick(await ws_frame(websocket))["seq"] == 1
            await publish_prices(client, server, SEEN - 1, 1000.0, symbol)
            seen = [ws_tick(await ws_frame(websocket))["seq"] for _ in range(SEEN - 1)]
            assert seen == list(range(2, SEEN + 1))

        away = await publish_prices(client, server, AWAY, 2000.0, symbol)

        async with connect(server.ws_url) as websocket:
            op = {"op": "subscribe", "symbols": [symbol], "after": {symbol: SEEN}, "epoch": epoch}
            await websocket.send(json.dumps(op))
            assert (await ws_frame(websocket))["type"] == "subscribed"
            resumed = [ws_tick(await ws_frame(websocket)) for _ in away]
            assert resumed == away
            [live] = await publish_prices(client, server, 1, 3000.0, symbol)
            assert ws_tick(await ws_frame(websocket)) == live


async def test_longpoll_client_resumes_with_after_without_loss_or_duplicates(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """Long polling `after=50` (in one or more replies) yields 51..150 once each, with no gap."""
    server, symbol = shared_server, own_symbol
    async with new_client() as client, asyncio.timeout(WAIT):
        await publish_prices(client, server, SEEN - 1, 1000.0, symbol)
        first = await client.get(longpoll_url(server, symbol))
        assert first.status_code == 200
        [latest] = first.json()["ticks"]
        assert latest["seq"] == SEEN
        epoch = latest["epoch"]

        away = await publish_prices(client, server, AWAY, 2000.0, symbol)
        resumed: list[Tick] = []
        cursor = SEEN
        while cursor < SEEN + AWAY:
            response = await client.get(
                longpoll_url(server, symbol), params={"after": cursor, "epoch": epoch, "timeout": 5}
            )
            assert response.status_code == 200, response.text
            reply = response.json()
            assert reply["gap"] is False
            assert reply["ticks"]
            resumed += reply["ticks"]
            cursor = resumed[-1]["seq"]
        assert resumed == away

        [live] = await publish_prices(client, server, 1, 3000.0, symbol)
        response = await client.get(
            longpoll_url(server, symbol), params={"after": cursor, "epoch": epoch, "timeout": 5}
        )
        assert response.json() == {"ticks": [live], "gap": False}


# --- cursors that cannot be honoured: a gap, then the latest tick ----------------------------
# These stories need some history, not particular seqs, so they share a server per history size
# (a server start costs more than a story) and each test reasons from the ticks it published.


@pytest.fixture(scope="module")
def short_history_server(serving_path: str) -> Iterator[RunningServer]:
    """A quiet server keeping only 20 ticks per symbol."""
    server = start_server("--no-feed", "--heartbeat", "0.5", "--history", str(SHORT_HISTORY))
    yield server
    server.stop()


@pytest.fixture
async def short_history(short_history_server: RunningServer) -> tuple[RunningServer, list[Tick]]:
    """The short-history server just after 100 more ticks: seq 5 is long gone from its history."""
    async with new_client() as client:
        stored = await publish_prices(client, short_history_server, 100, 1000.0)
    return short_history_server, stored


async def test_sse_cursor_older_than_history_gets_a_gap_event_then_the_latest_tick(
    short_history: tuple[RunningServer, list[Tick]],
) -> None:
    """Resuming from seq 5 after it left history: `event: gap`, the latest tick, then live ticks."""
    server, stored = short_history
    epoch = stored[-1]["epoch"]
    async with (
        new_client() as client,
        asyncio.timeout(WAIT),
        aconnect_sse(client, "GET", stream_url(server), headers={"Last-Event-ID": f"{epoch}:5"}) as source,
        aclosing(sse_events(source)) as events,
    ):
        gap = await anext(events)
        assert gap.event == "gap"
        assert gap.json() == {"symbol": SYMBOL, "epoch": epoch, "reason": "stale"}
        assert sse_tick(await anext(events)) == stored[-1]
        [live] = await publish_prices(client, server, 1, 3000.0)
        assert sse_tick(await anext(events)) == live


async def test_websocket_cursor_older_than_history_gets_a_gap_frame_then_the_latest_tick(
    short_history: tuple[RunningServer, list[Tick]],
) -> None:
    """Resubscribing `after` seq 5 once it left history: a `gap` frame, the latest tick, then live."""
    server, stored = short_history
    epoch = stored[-1]["epoch"]
    async with new_client() as client, asyncio.timeout(WAIT), connect(server.ws_url) as websocket:
        op = {"op": "subscribe", "symbols": [SYMBOL], "after": {SYMBOL: 5}, "epoch": epoch}
        await websocket.send(json.dumps(op))
        assert (await ws_frame(websocket))["type"] == "subscribed"
        gap = await ws_frame(websocket)
        assert gap["type"] == "gap"
        assert gap["symbol"] == SYMBOL
        assert ws_tick(await ws_frame(websocket)) == stored[-1]
        [live] = await publish_prices(client, server, 1, 3000.0)
        assert ws_tick(await ws_frame(websocket)) == live


async def test_longpoll_cursor_older_than_history_gets_gap_true_with_the_latest_tick(
    short_history: tuple[RunningServer, list[Tick]],
) -> None:
    """Long polling `after=5` once it left history answers at once: the latest tick, `gap: true`."""
    server, stored = short_history
    epoch = stored[-1]["epoch"]
    async with new_client() as client, asyncio.timeout(WAIT):
        response = await client.get(longpoll_url(server), params={"after": 5, "epoch": epoch, "timeout": 20})
        assert response.status_code == 200
        assert response.json() == {"ticks": [stored[-1]], "gap": True}


async def test_longpoll_cursor_just_inside_history_still_resumes_without_gap(
    short_history: tuple[RunningServer, list[Tick]],
) -> None:
    """History holds the newest 20 ticks: `after` the one before them gets all 20; one earlier, a gap."""
    server, stored = short_history
    epoch = stored[-1]["epoch"]
    oldest_kept = stored[-1]["seq"] - SHORT_HISTORY + 1
    async with new_client() as client, asyncio.timeout(WAIT):
        inside = await client.get(longpoll_url(server), params={"after": oldest_kept - 1, "epoch": epoch})
        assert inside.json() == {"ticks": stored[-SHORT_HISTORY:], "gap": False}
        outside = await client.get(longpoll_url(server), params={"after": oldest_kept - 2, "epoch": epoch})
        assert outside.json() == {"ticks": [stored[-1]], "gap": True}


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [("other:10", "epoch"), ("not-an-event-id", "unknown")],
    ids=["another-epoch", "unparsable"],
)
async def test_sse_id_from_another_epoch_or_unparsable_gets_a_gap_then_the_latest_tick(
    shared_server: RunningServer, last_event_id: str, reason: str
) -> None:
    """A `Last-Event-ID` this history cannot place (seq 10 exists, but not in epoch `other`) -> gap."""
    server = shared_server
    async with new_client() as client, asyncio.timeout(WAIT):
        stored = await publish_prices(client, server, 20, 1000.0)
        epoch = stored[-1]["epoch"]
        async with (
            aconnect_sse(client, "GET", stream_url(server), headers={"Last-Event-ID": last_event_id}) as source,
            aclosing(sse_events(source)) as events,
        ):
            gap = await anext(events)
            assert gap.event == "gap"
            assert gap.json() == {"symbol": SYMBOL, "epoch": epoch, "reason": reason}
            assert sse_tick(await anext(events)) == stored[-1]


async def test_websocket_after_from_another_epoch_gets_a_gap_then_the_latest_tick(
    shared_server: RunningServer,
) -> None:
    """`after: 10` with `epoch: "other"` is not replayed from this history: a gap, then the latest."""
    server = shared_server
    async with new_client() as client, asyncio.timeout(WAIT), connect(server.ws_url) as websocket:
        stored = await publish_prices(client, server, 20, 1000.0)
        op = {"op": "subscribe", "symbols": [SYMBOL], "after": {SYMBOL: 10}, "epoch": "other"}
        await websocket.send(json.dumps(op))
        assert (await ws_frame(websocket))["type"] == "subscribed"
        gap = await ws_frame(websocket)
        assert gap["type"] == "gap"
        assert gap["symbol"] == SYMBOL
        assert ws_tick(await ws_frame(websocket)) == stored[-1]


async def test_longpoll_after_from_another_epoch_gets_gap_true_with_the_latest_tick(
    shared_server: RunningServer,
) -> None:
    """`after=10&epoch=other` answers at once with the latest tick and `gap: true`, not the ticks after 10."""
    server = shared_server
    async with new_client() as client, asyncio.timeout(WAIT):
        stored = await publish_prices(client, server, 20, 1000.0)
        response = await client.get(longpoll_url(server), params={"after": 10, "epoch": "other", "timeout": 20})
        assert response.status_code == 200
        assert response.json() == {"ticks": [stored[-1]], "gap": True}


async def test_longpoll_after_ahead_of_the_newest_tick_gets_gap_true(shared_server: RunningServer) -> None:
    """A cursor from the future (one past the newest seq, or far past it) is answered at once with a gap."""
    server = shared_server
    async with new_client() as client, asyncio.timeout(WAIT):
        stored = await publish_prices(client, server, 3, 1000.0)
        newest = stored[-1]
        for ahead in (newest["seq"] + 1, 999_999):
            params = {"after": ahead, "epoch": newest["epoch"], "timeout": 20}
            response = await client.get(longpoll_url(server), params=params)
            assert response.status_code == 200
            assert response.json() == {"ticks": [newest], "gap": True}


async def test_longpoll_with_nothing_new_answers_204_after_its_timeout(shared_server: RunningServer) -> None:
    """Holding `after` the newest seq with `timeout=1` and no publish ends in an empty 204."""
    server = shared_server
    async with new_client() as client, asyncio.timeout(WAIT):
        latest = (await client.get(longpoll_url(server))).json()["ticks"][-1]
        params = {"after": latest["seq"], "epoch": latest["epoch"], "timeout": 1}
        response = await client.get(longpoll_url(server), params=params)
        assert response.status_code == 204
        assert response.content == b""


async def test_clients_of_a_restarted_server_get_a_gap_instead_of_waiting_forever(
    server_factory: ServerFactory,
) -> None:
    """After a restart the epoch is new: old cursors on every transport get a gap and the new latest."""
    async with new_client() as client, asyncio.timeout(WAIT):
        before = server_factory("--no-feed", "--heartbeat", "0.5")
        old_epoch = await epoch_of(client, before)
        old = await publish_prices(client, before, 10, 1000.0)
        old_cursor = old[-1]["seq"]
        before.stop()

        after = server_factory("--no-feed", "--heartbeat", "0.5")
        new_epoch = await epoch_of(client, after)
        assert new_epoch != old_epoch
        [opening] = (await client.get(longpoll_url(after))).json()["ticks"]
        assert opening["seq"] == 1
        assert opening["epoch"] == new_epoch

        headers = {"Last-Event-ID": f"{old_epoch}:{old_cursor}"}
        async with (
            aconnect_sse(client, "GET", stream_url(after), headers=headers) as source,
            aclosing(sse_events(source)) as events,
        ):
            gap = await anext(events)
            assert gap.event == "gap"
            assert gap.json()["epoch"] == new_epoch
            assert sse_tick(await anext(events)) == opening

        async with connect(after.ws_url) as websocket:
            op = {"op": "subscribe", "symbols": [SYMBOL], "after": {SYMBOL: old_cursor}, "epoch": old_epoch}
            await websocket.send(json.dumps(op))
            assert (await ws_frame(websocket))["type"] == "subscribed"
            assert (await ws_frame(websocket))["type"] == "gap"
            assert ws_tick(await ws_frame(websocket)) == opening

        params = {"after": old_cursor, "epoch": old_epoch, "timeout": 20}
        response = await client.get(longpoll_url(after), params=params)
        assert response.json() == {"ticks": [opening], "gap": True}
