"""The app `create_app()` returns must answer the same under any ASGI server, on either path.

`pushpull-server` runs it on uvicorn with the protocols the fast path knows (httptools, sans-I/O
WebSockets). Plain `uvicorn` on `create_app()` picks its own (`auto`: its legacy WebSocket
protocol, which the fast path does not know, so WebSockets take the portable path there). And the
module runs twice, the second time with the fast path turned off everywhere. Every way is started
for real and asked the same questions.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Iterator

import httpx
import pytest
import websockets
from httpx_sse import aconnect_sse

from tests.helpers import TOKEN, RunningServer, ServerFactory, clean_env, publish, start_server, until

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

ORIGIN = "https://charts.example"

PLAIN_APP = """
import socket, uvicorn
from server.app import create_app
from server.settings import Settings
settings = Settings(
    tick_rate=0, publish_token={token!r}, symbols=("RELIANCE", "TCS"), cors=({origin!r},), fast_path={fast!r}
)
app = create_app(settings)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(f"listening on http://127.0.0.1:{{sock.getsockname()[1]}}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""
DOOR_FLAGS = ("--no-feed", "--symbols", "RELIANCE,TCS", "--cors", ORIGIN)

# Both servers are shared by the module (per serving path): every story here reasons from the ticks it publishes.


def assert_stops_cleanly(server: RunningServer, signalled: bool = False) -> None:
    """It exits 0 on SIGTERM (plain uvicorn re-raises the signal: `signalled`), with no traceback."""
    code, output = server.stop()
    assert code == (-signal.SIGTERM if signalled else 0) and "Traceback" not in output, output


@pytest.fixture(scope="module")
def plain_app(serving_path: str) -> Iterator[RunningServer]:
    """`create_app()` under plain uvicorn, its protocols left to `auto`."""
    code = PLAIN_APP.format(token=TOKEN, origin=ORIGIN, fast=serving_path != "portable path")
    server = RunningServer([sys.executable, "-c", code], token=TOKEN, env=clean_env()).wait_until_ready()
    yield server
    assert_stops_cleanly(server, signalled=True)


@pytest.fixture(scope="module")
def door(serving_path: str) -> Iterator[RunningServer]:
    """`pushpull-server` itself."""
    server = start_server(*DOOR_FLAGS)
    yield server
    assert_stops_cleanly(server)


@pytest.fixture(params=["pushpull-server", "plain uvicorn"])
def either(request: pytest.FixtureRequest) -> RunningServer:
    fixture = "door" if request.param == "pushpull-server" else "plain_app"
    server: RunningServer = request.getfixturevalue(fixture)
    return server


async def test_poll_long_poll_sse_and_ws_answer_the_same_either_way(either: RunningServer) -> None:
    """Each transport delivers the published tick, whichever way the request was routed."""
    async with httpx.AsyncClient(timeout=10) as client:
        first = (await client.get(either.url + "/api/price/RELIANCE")).json()
        [tick] = await publish(client, either, "RELIANCE", [2000.0])
        assert tick["seq"] == first["seq"] + 1

        poll = await client.get(either.url + "/api/price/RELIANCE")
        assert poll.json() == tick
        etag = {"If-None-Match": poll.headers["etag"]}
        unchanged = await client.get(either.url + "/api/price/RELIANCE", headers=etag)
        assert unchanged.status_code == 304 and unchanged.content == b""

        held = await client.get(either.url + "/api/longpoll/RELIANCE", params={"after": first["seq"]})
        assert held.json() == {"ticks": [tick], "gap": False}

        async with aconnect_sse(client, "GET", either.url + "/api/stream/RELIANCE") as source:
            assert source.response.headers["cache-control"] == "no-store"
            event = await anext(e async for e in source.aiter_sse() if e.data)  # after the bare `retry:`
            assert (event.event, json.loads(event.data), event.id) == ("tick", tick, f"{tick['epoch']}:{tick['seq']}")

    async with websockets.connect(either.url.replace("http", "ws", 1) + "/ws") as socket_:
        await socket_.send(json.dumps({"op": "subscribe", "symbols": ["RELIANCE"]}))
        assert json.loads(await socket_.recv())["type"] == "subscribed"
        assert json.loads(await socket_.recv()) == {"type": "tick", **tick}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/price/NOPE", 404),
        ("/api/price/RELIANCE/extra", 404),
        ("/api/stream/", 404),
        ("/api/longpoll/RELIANCE?after=-1", 422),
        ("/api/longpoll/RELIANCE?after=x", 422),
        ("/api/longpoll/RELIANCE?after=1&timeout=61", 422),
        ("/api/stream/RELIANCE?last_event_id=" + "x" * 129, 422),
    ],
)
async def test_bad_requests_get_the_same_json_error_either_way(either: RunningServer, path: str, status: int) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(either.url + path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    if status == 422 and "longpoll" in path:
        assert detail[0]["loc"][0] == "query" and detail[0]["loc"][1] in ("after", "timeout"), detail


@pytest.mark.parametrize("path", ["/api/price/TCS", "/api/longpoll/TCS", "/api/stream/TCS", "/api/price/NOPE"])
async def test_cors_lets_only_the_allowed_origin_read(either: RunningServer, path: str) -> None:
    """`--cors ORIGIN`: a page from ORIGIN may read (its origin echoed back), errors included;
    another may not."""
    async with httpx.AsyncClient(timeout=10) as client:
        for origin, allowed in ((ORIGIN, True), ("https://elsewhere.example", False)):
            async with client.stream("GET", either.url + path, headers={"Origin": origin}) as response:
                assert response.status_code == (404 if "NOPE" in path else 200)
                got = response.headers.get_list("access-control-allow-origin")
                assert got == ([origin] if allowed else []), (origin, got)
                assert "Origin" in response.headers.get("vary", ""), response.headers  # for caches


async def test_a_long_poll_client_that_leaves_frees_its_slot_at_once(either: RunningServer) -> None:
    """A held long poll ends when its client hangs up, not when its 60 s timeout would."""
    async with httpx.AsyncClient(timeout=10) as client:
        seq = (await client.get(either.url + "/api/price/TCS")).json()["seq"]

        async def until_held(count: int) -> None:
            async def held() -> bool:
                stats = (await client.get(either.url + "/api/stats")).json()
                return bool(stats["transports"]["longpoll"]["open_connections"] == count)

            await until(held, timeout=10, step=0.02)

        host, port = either.url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /api/longpoll/TCS?after={seq}&timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            await until_held(1)
            writer.close()
            await writer.wait_closed()
            await until_held(0)
        [tick] = await publish(client, either, "TCS", [3000.0])  # and the server still answers
        answer = await client.get(either.url + "/api/longpoll/TCS", params={"after": seq})
        assert answer.json() == {"ticks": [tick], "gap": False}


async def test_cors_covers_publishing_too(either: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            either.url + "/api/publish",
            json={"symbol": "TCS", "price": 3500.0},
            headers={**either.auth, "Origin": ORIGIN},
        )
    assert response.status_code == 201, response.text
    assert response.headers.get_list("access-control-allow-origin") == [ORIGIN]


async def until_open(server: RunningServer, count: int) -> None:
    """Until SSE streams plus held long polls number `count` (bounded)."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def open_now() -> bool:
            stats = (await client.get(server.url + "/api/stats")).json()["transports"]
            return bool(stats["sse"]["open_connections"] + stats["longpoll"]["open_connections"] == count)

        await until(open_now, timeout=10, step=0.02)


async def test_a_client_that_pipelines_behind_a_stream_and_leaves_disturbs_nothing(
    server_factory: ServerFactory,
) -> None:
    """uvicorn marks only a connection's newest request as disconnected: a stream with a request
    pipelined behind it must still notice its socket is gone, and not break fan-out or publishing."""
    door = server_factory(*DOOR_FLAGS)  # its own: it counts every open stream, and must exit cleanly
    host, port = door.url.removeprefix("http://").split(":")
    for opened, first in enumerate(("/api/stream/RELIANCE", "/api/longpoll/RELIANCE?after=1&timeout=30"), 1):
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {first} HTTP/1.1\r\nHost: x\r\n\r\nGET /api/price/TCS HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await until_open(door, opened)  # the stream has started, or the poll is held
        writer.close()
        await writer.wait_closed()
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", door.url + "/api/stream/RELIANCE") as source,
    ):
        stored = await publish(client, door, "RELIANCE", [1400.0, 1400.05, 1400.1])
        seen: list[dict[str, object]] = []
        async with asyncio.timeout(10):
            async for event in source.aiter_sse():
                if event.event == "tick":
                    seen.append(json.loads(event.data))
                if seen and seen[-1] == stored[-1]:
                    break
    assert seen[-3:] == stored
    await until_open(door, 0)  # both noticed at the tick that found their sockets gone
    assert_stops_cleanly(door)


async def test_a_browser_preflight_is_answered_by_the_one_cors_policy(either: RunningServer) -> None:
    """A page on ORIGIN may ask to publish with a token (a preflighted request); another page may
    not, and a header the API does not take is refused even from ORIGIN."""
    asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    async with httpx.AsyncClient(timeout=10) as client:
        allowed = await client.options(either.url + "/api/publish", headers={"Origin": ORIGIN, **asks})
        other = await client.options(
            either.url + "/api/publish", headers={"Origin": "https://elsewhere.example", **asks}
        )
        odd = await client.options(
            either.url + "/api/stream/TCS",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-odd",
            },
        )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= {
        h.strip() for h in allowed.headers["access-control-allow-headers"].split(",")
    }
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers, other.headers
    assert odd.status_code == 400 and "headers" in odd.text, odd.text


async def test_cors_covers_the_routes_fastapi_serves_too(either: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for origin, allowed in ((ORIGIN, True), ("https://elsewhere.example", False)):
            response = await client.get(either.url + "/api/stats", headers={"Origin": origin})
            assert response.status_code == 200
            got = response.headers.get_list("access-control-allow-origin")
            assert got == ([origin] if allowed else []), (origin, got)


async def until_closed(server: RunningServer, raw: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes on a new connection; everything the server answers, until it closes it."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order_across_every_kind_of_route(door: RunningServer) -> None:
    """A price, a long poll, a publish (a POST with a body) and the stats, pipelined on one
    connection: four answers in order. On the fast path the first two are ours and the connection
    is then handed to uvicorn with the rest of the bytes."""
    body = json.dumps({"symbol": "TCS", "price": 3600.0}).encode()
    requests = (
        b"GET /api/price/TCS HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /api/longpoll/%54CS HTTP/1.1\r\nHost: x\r\n\r\n"  # (an escaped T: the path is decoded)
        b"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body + b""
        b"GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answers = await until_closed(door, requests)  # (the last says `Connection: close`)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)
    assert statuses == [b"200", b"200", b"201", b"200"], answers
    assert b'"price":3600.0' in answers and b'"transports"' in answers


async def test_an_http_1_0_poll_is_answered_and_closed(door: RunningServer) -> None:
    answer = await until_closed(door, b"GET /api/price/RELIANCE HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"symbol":"RELIANCE"' in answer, answer


async def test_a_held_long_poll_gets_a_whole_batch_in_one_answer(either: RunningServer) -> None:
    """Ticks published in one request reach a waiting long poll together, not one per answer."""
    async with httpx.AsyncClient(timeout=10) as client:
        seq = (await client.get(either.url + "/api/price/TCS")).json()["seq"]
        held = asyncio.create_task(client.get(either.url + "/api/longpoll/TCS", params={"after": seq, "timeout": 10}))
        await until_open(either, 1)
        stored = await publish(client, either, "TCS", [3700.0, 3700.05, 3700.1])
        answer = await held
    assert answer.json() == {"ticks": stored, "gap": False}


async def test_a_fragment_in_the_request_target_is_not_part_of_the_query(door: RunningServer) -> None:
    """`#...` is dropped before the query is read, as uvicorn does (not a 422 for `after=0#x`)."""
    answer = await until_closed(
        door, b"GET /api/longpoll/TCS?after=0#x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"ticks":[' in answer, answer


async def test_an_idle_keep_alive_connection_is_closed_after_five_seconds(door: RunningServer) -> None:
    """After its answer, a connection that asks nothing more is closed by the server (uvicorn's
    keep-alive timeout, 5 s), on our protocol as on uvicorn's."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    answer = await until_closed(door, b"GET /api/price/TCS HTTP/1.1\r\nHost: x\r\n\r\n", timeout=15)
    waited = loop.time() - asked
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert waited > 4, waited  # it was the keep-alive timeout that closed it (and within 15 s, or the read fails)
