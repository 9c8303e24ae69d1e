"""Several server processes on one Redis: one feed, the same ticks everywhere, and outages survived.

Every story runs real `pushpull-server` processes on a real `redis-server` (`tests.redis_server`):
the shared one, in a database of the story's own, or, for the stories that stop Redis, one of
the story's own. The transport stories themselves run on the Redis broker too (`BOTH_PATHS`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from websockets.asyncio.client import connect

from tests.helpers import RunningServer, ServerFactory, prices, publish, start_server, until, until_sync
from tests.redis_server import RedisServer
from tests.test_webhooks import WAIT, Receiver, receiving, register, verified_seqs
from tui.app import PushPullApp

Tick = dict[str, Any]


async def tick_events(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[ServerSentEvent]:
    """Tick and gap events (heartbeat comments are not events)."""
    async for event in events:
        if event.event in ("tick", "gap"):
            yield event


async def next_ticks(events: AsyncIterator[ServerSentEvent], count: int) -> list[Tick]:
    taken: list[Tick] = []
    async for event in tick_events(events):
        assert event.event == "tick", (event.event, event.data)
        taken.append(json.loads(event.data))
        if len(taken) == count:
            break
    return taken


async def stats(client: httpx.AsyncClient, server: RunningServer) -> dict[str, Any]:
    response = await client.get(server.url + "/api/stats")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def quiet_pair(server_factory: ServerFactory, url: str) -> tuple[RunningServer, RunningServer]:
    """Two quiet servers (no simulator, short heartbeats) on the Redis at `url`."""
    a, b = (server_factory("--no-feed", "--heartbeat", "0.5", "--broker", url) for _ in range(2))
    return a, b


@pytest.fixture
def pair(server_factory: ServerFactory, redis_server: RedisServer) -> tuple[RunningServer, RunningServer]:
    """Two quiet servers sharing one fresh Redis database."""
    return quiet_pair(server_factory, redis_server.next_url())


async def test_a_tick_published_on_one_process_reaches_every_mode_on_the_other(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """Poll, long poll, SSE and WebSocket clients of B get A's ticks with the same seq and epoch."""
    a, b = pair
    symbol = "TCS"
    async with (
        asyncio.timeout(20),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{b.url}/api/stream/{symbol}") as source,
        connect(b.ws_url) as socket,
    ):
        assert (await stats(client, a))["instance"] != (await stats(client, b))["instance"]
        events = source.aiter_sse()
        opening = (await next_ticks(events, 1))[0]
        assert opening["seq"] == 1
        await socket.send(json.dumps({"op": "subscribe", "symbols": [symbol]}))
        assert json.loads(await socket.recv())["type"] == "subscribed"
        assert json.loads(await socket.recv())["seq"] == 1
        held = asyncio.create_task(client.get(f"{b.url}/api/longpoll/{symbol}", params={"after": 1, "timeout": 10}))
        await asyncio.sleep(0.3)  # let the long poll be held before the publish
        stored = await publish(client, a, symbol, prices(5))
        assert [t["seq"] for t in stored] == [2, 3, 4, 5, 6]
        assert {t["epoch"] for t in stored} == {opening["epoch"]}
        assert await next_ticks(events, 5) == stored
        messages = [json.loads(await socket.recv()) for _ in range(5)]
        assert [m.pop("type") for m in messages] == ["tick"] * 5
        assert messages == stored
        long_poll = (await held).json()
        assert long_poll["gap"] is False
        assert long_poll["ticks"] == stored[: len(long_poll["ticks"])]
        assert (await client.get(f"{b.url}/api/price/{symbol}")).json() == stored[-1]
        assert (await stats(client, b))["epoch"] == (await stats(client, a))["epoch"] == opening["epoch"]


async def test_a_cursor_from_one_process_resumes_on_the_other_with_nothing_lost(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    symbol = "INFY"
    async with asyncio.timeout(20), httpx.AsyncClient(timeout=10) as client:
        async with aconnect_sse(client, "GET", f"{a.url}/api/stream/{symbol}") as source:
            seen = await next_ticks(source.aiter_sse(), 1)
        away = await publish(client, a, symbol, prices(20))
        last_id = f"{seen[-1]['epoch']}:{seen[-1]['seq']}"
        async with aconnect_sse(client, "GET", f"{b.url}/api/stream/{symbol}", headers={"Last-Event-ID": last_id}) as s:
            resumed = await next_ticks(s.aiter_sse(), 20)
        assert resumed == away
        reply = (await client.get(f"{b.url}/api/longpoll/{symbol}", params={"after": 10})).json()
        assert reply["gap"] is False
        assert [t["seq"] for t in reply["ticks"]] == list(range(11, 22))


def _holder(servers: list[RunningServer]) -> RunningServer:
    held = [s for s in servers if "feed" in httpx.get(s.url + "/api/stats").json()["leases"]]
    assert len(held) == 1, "exactly one process runs the feed"
    return held[0]


async def test_one_process_runs_the_feed_and_another_takes_over_when_it_is_killed(
    server_factory: ServerFactory, redis_server: RedisServer
) -> None:
    """SIGKILL the feed's holder: the other runs the feed within 3 s, and `seq` goes on with no
    repeat and no hole (ticks the dead process never published have no `seq`)."""
    url = redis_server.next_url()
    servers = [server_factory("--tick-rate", "20", "--symbols", "TCS", "--broker", url) for _ in range(2)]
    holder = _holder(servers)
    survivor = next(s for s in servers if s is not holder)
    async with asyncio.timeout(30), httpx.AsyncClient(timeout=None) as client:
        async with aconnect_sse(client, "GET", f"{survivor.url}/api/stream/TCS") as source:
            events = source.aiter_sse()
            before = await next_ticks(events, 10)
            killed_at = time.time()
            holder.stop(signal.SIGKILL)
            after: list[Tick] = []
            while not after or after[-1]["ts"] < killed_at + 0.5 or len(after) < 20:
                after += await next_ticks(events, 1)
        seqs = [t["seq"] for t in before + after]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq repeats or skips"
        resumed = next(t for t in after if t["ts"] > killed_at)
        assert resumed["ts"] - killed_at < 3.0, f"took {resumed['ts'] - killed_at:.2f} s to take the feed over"
        assert "feed" in (await stats(client, survivor))["leases"]
        assert len({t["epoch"] for t in before + after}) == 1


async def test_a_broken_redis_connection_loses_nothing(
    pair: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    """Redis drops every server's connection (CLIENT KILL): the readers reconnect from the last ID
    they saw, so the SSE client on B gets every tick A publishes, with no gap."""
    a, b = pair
    symbol = "SBIN"
    async with (
        asyncio.timeout(20),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{b.url}/api/stream/{symbol}") as source,
    ):
        events = source.aiter_sse()
        await next_ticks(events, 1)
        first = await publish(client, a, symbol, prices(3))
        assert await next_ticks(events, 3) == first
        reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
        writer.write(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
        await writer.drain()
        killed = int((await reader.readline()).strip(b":\r\n"))
        writer.close()
        assert killed >= 4, "each server has a reading and a command connection"
        second: list[Tick] = []
        for price in prices(5, start=2000):
            response = await client.post(
                a.url + "/api/publish", json={"symbol": symbol, "price": price}, headers=a.auth
            )
            assert response.status_code == 201, response.text
            second.append(response.json())
        assert await next_ticks(events, 5) == second
    for server in (a, b):
        assert "Traceback" not in server.output


async def _health(client: httpx.AsyncClient, server: RunningServer) -> int:
    try:
        return (await client.get(server.url + "/healthz")).status_code
    except httpx.TransportError:
        return 0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the story's own, to stop and start (no persistence)."""
    redis = RedisServer()
    yield redis
    redis.stop()


async def test_redis_gone_for_5_s_and_back_empty_crashes_nothing_and_reports_one_gap(
    server_factory: ServerFactory, own_redis: RedisServer
) -> None:
    """While Redis is away: /healthz and publishing answer 503 with the reason. When it is back
    (without its data): both servers recover by themselves, and a stream client on B gets one gap
    event naming the new epoch, then A's ticks. One warning per outage per server, no traceback."""
    a, b = quiet_pair(server_factory, own_redis.url())
    symbol = "RELIANCE"
    async with (
        asyncio.timeout(40),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{b.url}/api/stream/{symbol}") as source,
    ):
        events = tick_events(source.aiter_sse())
        old_epoch = json.loads((await anext(events)).data)["epoch"]
        held = asyncio.create_task(
            client.get(f"{b.url}/api/longpoll/{symbol}", params={"after": 1, "timeout": 30}, timeout=40)
        )
        own_redis.stop()
        for server in (a, b):
            await until(lambda server=server: _is(client, server, 503), timeout=10)
            health = await client.get(server.url + "/healthz")
            assert "Redis" in health.json()["detail"] and "unreachable" in health.json()["detail"]
        refused = await client.post(a.url + "/api/publish", json={"symbol": symbol, "price": 1.0}, headers=a.auth)
        assert refused.status_code == 503
        assert "Redis" in refused.json()["detail"]
        await asyncio.sleep(5)
        own_redis.start()
        for server in (a, b):
            await until(lambda server=server: _is(client, server, 200), timeout=15)
        stored = await publish(client, a, symbol, prices(3, start=500))
        new_epoch = stored[0]["epoch"]
        assert new_epoch != old_epoch
        gap = await anext(events)
        assert gap.event == "gap", (gap.event, gap.data)
        got: list[Tick] = []
        while not got or got[-1]["seq"] < stored[-1]["seq"]:
            got.append(json.loads((await anext(events)).data))
        assert got[-3:] == stored
        assert [t["seq"] for t in got] == list(range(1, len(got) + 1)), "the new history, from its start"
        assert {t["epoch"] for t in got} == {new_epoch}
        answer = (await held).json()  # held through the outage, answered in the new epoch
        assert answer["gap"] is True
        assert {t["epoch"] for t in answer["ticks"]} == {new_epoch}
    for server in (a, b):
        code, output = server.stop()
        assert code == 0, output
        assert "Traceback" not in output, output
        assert output.count("lost Redis at") == 1, output


async def test_the_app_says_when_a_servers_broker_is_away(
    server_factory: ServerFactory, own_redis: RedisServer
) -> None:
    """Push panes stay connected and quiet while Redis is away; the server bar says why, and stops
    saying it when Redis is back."""
    server = server_factory("--no-feed", "--broker", own_redis.url())
    app = PushPullApp(server.url, stats_interval=0.2, seed=1)
    async with asyncio.timeout(40), app.run_test(size=(100, 30)) as pilot:
        await until(
            lambda: "instance" in str(app.server_bar.render()) or "held" in str(app.server_bar.render()), pilot=pilot
        )
        assert "broker unreachable" not in str(app.server_bar.render())
        own_redis.stop()
        await until(lambda: "broker unreachable" in str(app.server_bar.render()), pilot=pilot)
        own_redis.start()
        await until(lambda: "broker unreachable" not in str(app.server_bar.render()), pilot=pilot)


async def _is(client: httpx.AsyncClient, server: RunningServer, status: int) -> bool:
    return await _health(client, server) == status


async def test_redis_restarted_with_its_data_is_no_gap(server_factory: ServerFactory, tmp_path: Path) -> None:
    """A Redis that kept its data (a dump file): same epoch, and B's stream client misses nothing."""
    redis = RedisServer(directory=str(tmp_path))
    try:
        a, b = quiet_pair(server_factory, redis.url())
        symbol = "HDFCBANK"
        async with (
            asyncio.timeout(30),
            httpx.AsyncClient(timeout=10) as client,
            aconnect_sse(client, "GET", f"{b.url}/api/stream/{symbol}") as source,
        ):
            events = tick_events(source.aiter_sse())
            await anext(events)
            before = await publish(client, a, symbol, prices(3))
            redis.stop()  # SIGTERM: it saves its dump first
            redis.start()
            for server in (a, b):
                await until(lambda server=server: _is(client, server, 200), timeout=15)
            after = await publish(client, a, symbol, prices(3, start=3000))
            got = [await anext(events) for _ in range(6)]
            assert [e.event for e in got] == ["tick"] * 6
            assert [json.loads(e.data) for e in got] == before + after
            assert after[0]["seq"] == before[-1]["seq"] + 1
    finally:
        redis.stop()


async def test_webhooks_are_sent_once_per_tick_by_one_process_and_survive_its_death(
    server_factory: ServerFactory, redis_server: RedisServer
) -> None:
    """Registered on B, ticks published on A: every tick reaches the receiver once (two processes,
    one sender). Both processes describe the endpoint. Kill the sender: the other takes the lease
    and the endpoint on, from the cursors the sender saved: nothing is lost, and a tick sent twice
    carries the same `webhook-id` (a receiver drops it as a replay). Deleted on either, it stops."""
    url = redis_server.next_url()
    a = server_factory("--no-feed", "--broker", url)
    b = server_factory("--no-feed", "--broker", url)
    symbol = "ICICIBANK"
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=10) as client, receiving(Receiver()) as receiver:
        created = await register(client, b, receiver.url, [symbol])
        first = await publish(client, a, symbol, prices(20))
        await until(lambda: len(receiver.requests) >= 20, timeout=WAIT)
        await asyncio.sleep(0.5)  # long enough for a second sender's copy to show
        assert verified_seqs(receiver, created["secret"]) == [t["seq"] for t in first]
        for server in (a, b):
            described = (await client.get(f"{server.url}/api/webhooks/{created['id']}")).json()
            await until(lambda server=server: _delivered(client, server, created["id"], 20), timeout=WAIT)
            assert described["url"] == receiver.url
        sender = a if "webhooks" in (await stats(client, a))["leases"] else b
        survivor = b if sender is a else a
        await asyncio.sleep(0.5)  # the sender saves its cursors every 0.25 s
        sender.stop(signal.SIGKILL)
        second = await publish(client, survivor, symbol, prices(20, start=2000))
        await until(lambda: second[-1]["seq"] in verified_seqs(receiver, created["secret"]), timeout=WAIT)
        seqs = verified_seqs(receiver, created["secret"])
        assert sorted(set(seqs)) == [t["seq"] for t in first + second], "every tick, once at least"
        ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
        assert len(set(ids)) == len(set(seqs)), "a tick sent again carries the same webhook-id"
        assert (await client.delete(f"{survivor.url}/api/webhooks/{created['id']}")).status_code == 204
        await asyncio.sleep(0.5)
        sent = len(receiver.requests)
        await publish(client, survivor, symbol, prices(3, start=3000))
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == sent, "a deleted webhook gets nothing more"
        assert (await client.get(f"{survivor.url}/api/webhooks/{created['id']}")).status_code == 404


async def _delivered(client: httpx.AsyncClient, server: RunningServer, endpoint_id: str, count: int) -> bool:
    described = (await client.get(f"{server.url}/api/webhooks/{endpoint_id}")).json()
    return bool(described["delivered"] >= count)


def test_workers_serve_one_port_from_several_processes(redis_server: RedisServer) -> None:
    """`--workers 2`: two processes answer on one port, one of them runs the feed, a worker that
    dies is replaced, and a SIGTERM to the parent ends them all with status 0."""
    server = start_server("--workers", "2", "--tick-rate", "5", "--broker", redis_server.next_url())
    try:
        leases: dict[str, list[str]] = {}
        deadline = time.monotonic() + 20
        while not (len(leases) == 2 and any("feed" in held for held in leases.values())):
            assert time.monotonic() < deadline, leases
            with httpx.Client() as client:  # a new connection each time
                answer = client.get(server.url + "/api/stats").json()
            leases[answer["instance"]] = answer["leases"]
        instances = set(leases)
        assert sum("feed" in held for held in leases.values()) == 1, "one of the workers runs the feed"
        victim = int(sorted(instances)[0].rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        replaced: set[str] = set()
        deadline = time.monotonic() + 20
        while not (replaced - instances) and time.monotonic() < deadline:
            try:
                with httpx.Client() as client:
                    replaced.add(client.get(server.url + "/api/stats").json()["instance"])
            except httpx.TransportError:
                pass
        assert replaced - instances, "no worker replaced the killed one"
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert f"worker {victim} was killed by signal 9; starting another" in output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_password_in_the_redis_url_is_never_shown(server_factory: ServerFactory, form: str) -> None:
    """Not at start-up, not in /api/stats, not in /healthz's reason or the warning while Redis is away."""
    redis = RedisServer("--requirepass", "s3cret-pw")
    try:
        url = redis.url(password="s3cret-pw") if form == "userinfo" else redis.url() + "?password=s3cret-pw"
        server = server_factory("--no-feed", "--broker", url)
        body = httpx.get(server.url + "/api/stats").json()
        assert body["broker"] == f"redis://127.0.0.1:{redis.port}/0"
        redis.stop()
        until_sync(lambda: httpx.get(server.url + "/healthz").status_code == 503)
        assert "s3cret-pw" not in httpx.get(server.url + "/healthz").text
        _, output = server.stop()
        assert "lost Redis at" in output
        assert "s3cret-pw" not in output
        assert f"broker redis://127.0.0.1:{redis.port}/0" in output
    finally:
        redis.stop()


async def test_the_feed_goes_on_after_redis_restarts_empty(
    server_factory: ServerFactory, own_redis: RedisServer
) -> None:
    """The feed's holder loses its lease with Redis's data; it takes it again and publishes on, in
    the new epoch, by itself."""
    server = server_factory("--tick-rate", "20", "--symbols", "TCS", "--broker", own_redis.url())
    async with asyncio.timeout(30), httpx.AsyncClient(timeout=5) as client:
        before = (await client.get(server.url + "/api/price/TCS")).json()
        own_redis.stop()
        own_redis.start()

        async def ticking_in_a_new_epoch() -> bool:
            response = await client.get(server.url + "/api/price/TCS")
            tick = response.json() if response.status_code == 200 else {}
            return bool(tick.get("epoch") not in (None, before["epoch"]) and tick["seq"] > 10)

        await until(ticking_in_a_new_epoch, timeout=15)
        assert "feed" in (await stats(client, server))["leases"]


def test_a_worker_restarted_while_redis_is_away_comes_up_and_recovers(own_redis: RedisServer) -> None:
    """One worker dies during an outage: its replacement starts anyway (503 from /healthz, saying
    why), the supervisor stays, and once Redis is back every worker answers 200."""
    server = start_server("--workers", "2", "--no-feed", "--broker", own_redis.url())
    try:
        own_redis.stop()
        victim = int(httpx.get(server.url + "/api/stats").json()["instance"].rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        until_sync(lambda: f"worker {victim} was killed by signal 9" in server.output)
        time.sleep(3)
        assert server.process.poll() is None, server.output
        own_redis.start()
        healthy: set[str] = set()
        deadline = time.monotonic() + 20
        while len(healthy) < 2:
            assert time.monotonic() < deadline, (healthy, server.output)
            with httpx.Client() as client:
                if client.get(server.url + "/healthz").status_code == 200:
                    healthy.add(client.get(server.url + "/api/stats").json()["instance"])
        assert f"{victim}" not in " ".join(healthy)
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output, output
