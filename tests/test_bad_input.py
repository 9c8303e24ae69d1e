"""Bad input gets a clear error, and nothing else is disturbed.

One quiet server serves the whole module while an SSE subscriber watches RELIANCE. Every test
throws some bad input at the server and publishes good ticks in between; the last test checks
that the watcher saw every good tick exactly once, in order, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import RunningServer, ServerFactory, publish, start_server, until

BOTH_PATHS = True
"""Every story here runs on the fast path and on the portable ASGI path (see conftest)."""

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT = 20.0
"""Upper bound on any single wait in this module, in seconds."""
LIMIT = 64 * 1024
SYMBOL = "RELIANCE"


def assert_error(response: httpx.Response, status: int) -> Any:
    """The response has `status` and a JSON `{"detail": ...}` body; returns the detail."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail"}, body
    return body["detail"]


class Watcher:
    """An SSE subscriber on RELIANCE running for the whole module, and the ticks it should see."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.received: list[tuple[str, dict[str, Any]]] = []
        """(event name, data) of every `tick` or `gap` event, in arrival order."""
        self.ids: list[str | None] = []
        self.published: list[dict[str, Any]] = []
        """Every RELIANCE tick the server stored while the watcher ran, in publish order."""
        self.task: asyncio.Task[None] | None = None
        self._next_price = 2000.0

    async def run(self) -> None:
        timeout = httpx.Timeout(WAIT, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            aconnect_sse(client, "GET", f"{self.server.url}/api/stream/{SYMBOL}") as source,
        ):
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                if event.event in ("tick", "gap"):
                    self.received.append((event.event, json.loads(event.data)))
                    self.ids.append(event.id)

    def ticks(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.received if kind == "tick"]

    async def wait_for_seq(self, seq: int) -> None:
        """Until the watcher has a tick with this seq (or the task died)."""

        def arrived() -> bool:
            assert self.task is not None and not self.task.done(), "the SSE watcher stopped"
            return any(t["seq"] >= seq for t in self.ticks())

        await until(arrived, timeout=WAIT)

    async def publish(self, client: httpx.AsyncClient, count: int = 1) -> list[dict[str, Any]]:
        """Publish `count` good RELIANCE ticks, record them, and wait until the watcher has them."""
        batch = [round(self._next_price + 0.05 * i, 2) for i in range(count)]
        self._next_price = round(self._next_price + 0.05 * count, 2)
        stored = await publish(client, self.server, SYMBOL, batch)
        self.published.extend(stored)
        await self.wait_for_seq(stored[-1]["seq"])
        return stored

    def record_if_stored(self, response: httpx.Response) -> None:
        """A bad publish the server wrongly accepted still made ticks; count them as published."""
        if response.status_code == 201:
            body = response.json()
            for tick in body.get("ticks", [body]):
                if tick["symbol"] == SYMBOL:
                    self.published.append(tick)


@pytest.fixture(scope="module")
def quiet_server(serving_path: str) -> Iterator[RunningServer]:
    """The module's server: no simulator, publishing by token, short heartbeats."""
    # History deep enough that a 64 KiB batch (~1,700 ticks) does not outrun it: no gaps by design.
    server = start_server("--no-feed", "--heartbeat", "0.5", "--history", "5000")
    yield server
    code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output, output  # no bad input made an unhandled exception (a 500)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watcher(quiet_server: RunningServer) -> AsyncIterator[Watcher]:
    watcher = Watcher(quiet_server)
    watcher.task = asyncio.create_task(watcher.run())
    await watcher.wait_for_seq(1)
    yield watcher
    watcher.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher.task


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client per test, so a connection the server dropped cannot leak into the next test."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        yield client


async def stats_until(
    client: httpx.AsyncClient, server: RunningServer, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll GET /api/stats until `done(stats)` holds (bounded)."""
    stats: dict[str, Any] = {}

    async def holds() -> bool:
        nonlocal stats
        stats = (await client.get(server.url + "/api/stats")).json()
        return done(stats)

    await until(holds, timeout=WAIT, step=0.02)
    return stats


async def post_raw(server: RunningServer, body: str | bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a body exactly as given (its own connection: a server error may close it)."""
    sent = {"content-type": "application/json", **server.auth, **(headers or {})}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.post(server.url + "/api/publish", content=body, headers=sent)


# --- HTTP: unknown symbols, bad query parameters ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/price/NOPE", None),
        ("GET", "/api/longpoll/NOPE", None),
        ("GET", "/api/longpoll/NOPE?after=1&timeout=1", None),
        ("GET", "/api/stream/NOPE", None),
        ("POST", "/api/publish", {"symbol": "NOPE", "price": 10.0}),
        ("POST", "/api/publish", {"ticks": [{"symbol": "NOPE", "price": 10.0}]}),
    ],
    ids=["poll", "longpoll", "held-longpoll", "sse", "publish", "publish-batch"],
)
async def test_an_unknown_symbol_is_a_404_on_every_route(
    watcher: Watcher, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Asking about, streaming or publishing a symbol the server does not have is a plain 404."""
    server = watcher.server
    async with asyncio.timeout(WAIT):
        response = await client.request(method, server.url + path, json=body, headers=server.auth)
    detail = assert_error(response, 404)
    assert "NOPE" in str(detail)
    await watcher.publish(client)


async def test_a_batch_with_one_unknown_symbol_publishes_nothing(watcher: Watcher, client: httpx.AsyncClient) -> None:
    """A batch is checked whole: one bad symbol and none of its good ticks go out."""
    server = watcher.server
    before = (await client.get(f"{server.url}/api/price/{SYMBOL}")).json()
    batch = {"ticks": [{"symbol": SYMBOL, "price": 1.0}, {"symbol": "NOPE", "price": 2.0}]}
    response = await client.post(server.url + "/api/publish", json=batch, headers=server.auth)
    assert_error(response, 404)
    watcher.record_if_stored(response)
    after = (await client.get(f"{server.url}/api/price/{SYMBOL}")).json()
    assert after == before
    await watcher.publish(client)


@pytest.mark.parametrize(
    "query",
    [
        "after=abc",
        "after=1.5",
        "after=-1",
        "after=",
        "after=1&timeout=0",
        "after=1&timeout=61",
        "after=1&timeout=0.5",
        "after=1&timeout=-5",
        "after=1&timeout=nan",
        "after=1&timeout=inf",
        "after=1&timeout=soon",
        pytest.param("after=1.0", id="after=1.0"),
        pytest.param("after=%2B1", id="after=+1"),
        pytest.param("after=1_0", id="after=1_0"),
        pytest.param("after=%201", id="after=space1"),
        pytest.param("after=%D9%A1", id="after=arabic-indic-one"),
        pytest.param("after=%C2%B2", id="after=superscript-two"),
        pytest.param("after=" + "9" * 19, id="after=19-digits"),
    ],
)
async def test_a_bad_long_poll_cursor_or_timeout_is_a_422(
    watcher: Watcher, client: httpx.AsyncClient, query: str
) -> None:
    """`after` must be a non-negative integer and `timeout` within 1..60, else 422 at once."""
    async with asyncio.timeout(WAIT):
        response = await client.get(f"{watcher.server.url}/api/longpoll/{SYMBOL}?{query}")
    assert_error(response, 422)
    await watcher.publish(client)


@pytest.mark.parametrize("form", ["header", "query"])
async def test_a_last_event_id_with_a_digit_that_is_not_0_to_9_resumes_as_unknown(
    watcher: Watcher, client: httpx.AsyncClient, form: str
) -> None:
    """`x:²` (Python's int() calls "²" a digit, then refuses it) is a cursor nobody could have
    been given: the stream opens with a gap ("unknown") and the latest tick, not a 500."""
    url = f"{watcher.server.url}/api/stream/{SYMBOL}"
    headers = {"Last-Event-ID": "x:²".encode("latin-1")} if form == "header" else {}
    params = {"last_event_id": "x:²"} if form == "query" else {}
    async with asyncio.timeout(WAIT), aconnect_sse(client, "GET", url, headers=headers, params=params) as source:
        assert source.response.status_code == 200
        first = await anext(e async for e in source.aiter_sse() if e.event in ("gap", "tick"))  # (after `retry:`)
    assert first.event == "gap", (first.event, first.data)
    assert json.loads(first.data)["reason"] == "unknown"
    await watcher.publish(client)


async def test_an_over_long_last_event_id_is_refused_not_streamed(watcher: Watcher, client: httpx.AsyncClient) -> None:
    """A resume id far longer than any real one is bad input: 422, not a stream."""
    async with asyncio.timeout(WAIT):
        response = await client.get(f"{watcher.server.url}/api/stream/{SYMBOL}?last_event_id={'x' * 500}")
    assert_error(response, 422)
    await watcher.publish(client)


# --- HTTP: bad publish bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    [
        "0",
        "0.0",
        "-1",
        "-0.05",
        '"abc"',
        '""',
        "null",
        "[1]",
        '{"value": 1}',
        '"NaN"',
        '"Infinity"',
        pytest.param("NaN", id="NaN-literal"),
        pytest.param("Infinity", id="Infinity-literal"),
        pytest.param("-Infinity", id="-Infinity-literal"),
        pytest.param("1e400", id="overflows-to-infinity"),
    ],
)
async def test_a_price_that_is_not_a_finite_positive_number_is_a_422(
    watcher: Watcher, client: httpx.AsyncClient, price: str
) -> None:
    """Zero, negative, NaN, infinite or non-numeric prices are refused with 422, singly or in a batch."""
    single = await post_raw(watcher.server, f'{{"symbol":"{SYMBOL}","price":{price}}}')
    watcher.record_if_stored(single)
    batch = await post_raw(
        watcher.server, f'{{"ticks":[{{"symbol":"{SYMBOL}","price":1000}},{{"symbol":"{SYMBOL}","price":{price}}}]}}'
    )
    watcher.record_if_stored(batch)
    await watcher.publish(client)
    assert_error(single, 422)
    assert_error(batch, 422)


@pytest.mark.parametrize("price", ['"1312.45"', "true"], ids=["numeric-string", "boolean"])
async def test_a_price_that_is_a_string_or_boolean_is_a_422_not_coerced(
    watcher: Watcher, client: httpx.AsyncClient, price: str
) -> None:
    """A price must be a JSON number; a string that looks like one, or `true`, is not."""
    response = await post_raw(watcher.server, f'{{"symbol":"{SYMBOL}","price":{price}}}')
    watcher.record_if_stored(response)
    await watcher.publish(client)
    assert_error(response, 422)


async def test_a_huge_finite_price_gets_an_answer_not_a_server_error(
    watcher: Watcher, client: httpx.AsyncClient
) -> None:
    """1e308 is finite and positive: stored (201) or refused (422), but never a 500."""
    response = await post_raw(watcher.server, f'{{"symbol":"{SYMBOL}","price":1e308}}')
    watcher.record_if_stored(response)
    await watcher.publish(client)
    assert response.status_code in (201, 422), (response.status_code, response.text)


@pytest.mark.parametrize(
    "body",
    [
        {"symbol": SYMBOL, "price": 1000.0, "volume": 10},
        {"ticks": [{"symbol": SYMBOL, "price": 1000.0, "side": "buy"}]},
        {"ticks": [{"symbol": SYMBOL, "price": 1000.0}], "note": "x"},
        {"symbol": SYMBOL},
        {"price": 1000.0},
        {"ticks": []},
        {"symbol": 5, "price": 1000.0},
    ],
    ids=[
        "extra-field",
        "extra-field-in-batch-item",
        "extra-field-beside-batch",
        "no-price",
        "no-symbol",
        "empty-batch",
        "symbol-not-a-string",
    ],
)
async def test_an_unknown_or_missing_field_is_a_422(
    watcher: Watcher, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """Publish bodies are strict: extra fields, missing fields or wrong shapes are 422."""
    response = await post_raw(watcher.server, json.dumps(body))
    watcher.record_if_stored(response)
    assert_error(response, 422)
    await watcher.publish(client)


@pytest.mark.parametrize(
    "raw",
    ['{"symbol": "RELIANCE", "price": ', "", "not json", "[]", "null", '"RELIANCE"', "{'symbol': 'RELIANCE'}"],
    ids=["truncated", "empty", "words", "array", "null", "string", "single-quotes"],
)
async def test_malformed_json_is_a_422(watcher: Watcher, client: httpx.AsyncClient, raw: str) -> None:
    """A body that is not a JSON object is refused with a 422 that says so."""
    response = await post_raw(watcher.server, raw)
    assert_error(response, 422)
    await watcher.publish(client)


async def test_a_body_over_64_kib_is_a_413(watcher: Watcher, client: httpx.AsyncClient) -> None:
    """A publish body over 64 KiB is refused with 413, whether its length is declared or not."""
    server = watcher.server
    padded = json.dumps({"symbol": SYMBOL, "price": 1000.0, "pad": "x" * (LIMIT + 10)})
    declared = await post_raw(server, padded)
    assert_error(declared, 413)
    await watcher.publish(client)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ticks": ['
        for _ in range(LIMIT // 32 + 100):
            yield b'{"symbol":"RELIANCE","price":1},'
        yield b'{"symbol":"RELIANCE","price":1}]}'

    async with httpx.AsyncClient(timeout=WAIT) as fresh:
        request = fresh.build_request(
            "POST",
            server.url + "/api/publish",
            content=chunks(),
            headers={**server.auth, "content-type": "application/json"},
        )
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        chunked = await fresh.send(request)
    assert_error(chunked, 413)
    watcher.record_if_stored(chunked)
    await watcher.publish(client)


async def test_a_body_just_under_64_kib_is_accepted(watcher: Watcher, client: httpx.AsyncClient) -> None:
    """The limit is the limit: a batch a little under 64 KiB is published whole."""
    items = []
    size = len('{"ticks":[]}')
    price = 3000.0
    while True:
        item = json.dumps({"symbol": SYMBOL, "price": price}, separators=(",", ":"))
        if size + len(item) + 1 > LIMIT - 64:
            break
        items.append(item)
        size += len(item) + 1
        price = round(price + 0.05, 2)
    body = '{"ticks":[' + ",".join(items) + "]}"
    assert LIMIT - 128 < len(body) <= LIMIT
    response = await post_raw(watcher.server, body)
    watcher.record_if_stored(response)
    assert response.status_code == 201, response.text
    assert len(response.json()["ticks"]) == len(items)
    await watcher.wait_for_seq(response.json()["ticks"][-1]["seq"])
    await watcher.publish(client)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer test-token-but-longer", "Bearer", "Basic dGVzdC10b2tlbg==", "test-token"],
    ids=["missing", "wrong", "token-prefix", "bare-scheme", "basic-scheme", "no-scheme"],
)
async def test_publishing_without_the_right_token_is_a_401(
    watcher: Watcher, client: httpx.AsyncClient, authorization: str | None
) -> None:
    """Only `Authorization: Bearer <the token>` may publish; anything else is 401 and publishes nothing."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post(
        watcher.server.url + "/api/publish", json={"symbol": SYMBOL, "price": 1.0}, headers=headers
    )
    watcher.record_if_stored(response)
    assert_error(response, 401)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    await watcher.publish(client)


async def test_a_server_without_a_publish_token_forbids_publishing(
    watcher: Watcher, client: httpx.AsyncClient, server_factory: ServerFactory
) -> None:
    """With no --publish-token configured, publishing is off: 403 with or without a token."""
    closed = server_factory("--no-feed", token=None)
    for headers in ({}, {"Authorization": "Bearer test-token"}, {"Authorization": "Bearer"}):
        response = await client.post(
            closed.url + "/api/publish", json={"symbol": SYMBOL, "price": 1.0}, headers=headers
        )
        assert_error(response, 403)
    assert (await client.get(f"{closed.url}/api/price/{SYMBOL}")).json()["seq"] == 1
    await watcher.publish(client)


# --- WebSocket ------------------------------------------------------------------------------------


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message = await ws.recv()
    assert isinstance(message, str), message
    frame: dict[str, Any] = json.loads(message)
    return frame


async def test_websocket_garbage_gets_error_frames_and_the_socket_stays_usable(
    watcher: Watcher, client: httpx.AsyncClient
) -> None:
    """Non-JSON, unknown ops, bad subscribe fields and binary frames each get an `error` frame;
    afterwards the same socket still pings and subscribes, and receives new ticks."""
    bad: list[str | bytes] = [
        "hello",
        "{not json",
        "[1, 2]",
        '"subscribe"',
        "{}",
        '{"op": "dance"}',
        '{"op": 7}',
        '{"op": "subscribe", "symbols": "RELIANCE"}',
        '{"op": "subscribe", "symbols": []}',
        '{"op": "subscribe", "symbols": ["NOPE"]}',
        '{"op": "subscribe", "symbols": ["RELIANCE"], "after": {"RELIANCE": -1}}',
        '{"op": "subscribe", "symbols": ["RELIANCE"], "after": {"RELIANCE": "x"}}',
        '{"op": "subscribe", "symbols": ["RELIANCE"], "after": {"TCS": 1}}',
        '{"op": "subscribe", "symbols": ["RELIANCE"], "colour": "red"}',
        '{"op": "unsubscribe"}',
        '{"op": "ping", "extra": 1}',
        b"\x00\x01binary",
        b'{"op": "ping"}',
    ]
    async with connect(watcher.server.ws_url) as ws:
        for index, message in enumerate(bad):
            await ws.send(message)
            frame = await next_frame(ws)
            assert frame["type"] == "error", (message, frame)
            assert isinstance(frame["detail"], str) and frame["detail"], frame
            if index % 6 == 0:
                await watcher.publish(client)

        await ws.send('{"op": "ping"}')
        pong = await next_frame(ws)
        assert pong["type"] == "pong" and isinstance(pong["ts"], float)

        await ws.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL]}))
        subscribed = await next_frame(ws)
        assert subscribed["type"] == "subscribed" and subscribed["symbols"] == [SYMBOL]
        latest = await next_frame(ws)
        assert latest["type"] == "tick" and latest["symbol"] == SYMBOL
        assert latest["seq"] == watcher.published[-1]["seq"]

        stored = await watcher.publish(client, count=3)
        frames = [await next_frame(ws) for _ in stored]
        assert [(f["type"], f["seq"], f["price"]) for f in frames] == [("tick", t["seq"], t["price"]) for t in stored]


async def test_subscribing_again_to_a_followed_symbol_sends_nothing_twice(
    watcher: Watcher, client: httpx.AsyncClient
) -> None:
    """A repeated subscribe (no cursor) is acknowledged and changes nothing: the latest tick is not
    sent again (10,000 repeats once gave 11 copies), and new ticks come once each."""
    async with connect(watcher.server.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL]}))
        assert (await next_frame(ws))["type"] == "subscribed"
        assert (await next_frame(ws))["type"] == "tick"  # the latest, once
        for _ in range(50):
            await ws.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL]}))
        for _ in range(50):
            assert (await next_frame(ws))["type"] == "subscribed"
        stored = await watcher.publish(client, count=2)
        frames = [await next_frame(ws) for _ in stored]
        assert [(f["type"], f["seq"]) for f in frames] == [("tick", t["seq"]) for t in stored]


async def test_a_websocket_frame_over_64_kib_closes_that_socket_with_1009(
    watcher: Watcher, client: httpx.AsyncClient
) -> None:
    """An oversized frame closes only its own socket, with 1009; a neighbour keeps receiving."""
    async with connect(watcher.server.ws_url) as neighbour, connect(watcher.server.ws_url) as ws:
        await neighbour.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL]}))
        assert (await next_frame(neighbour))["type"] == "subscribed"
        assert (await next_frame(neighbour))["type"] == "tick"

        await ws.send(json.dumps({"op": "ping", "pad": "x" * LIMIT}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value

        stored = await watcher.publish(client)
        frame = await next_frame(neighbour)
        assert (frame["type"], frame["seq"]) == ("tick", stored[0]["seq"])


# --- And nothing was lost ---------------------------------------------------------------------------


async def test_the_watching_stream_saw_every_good_tick_once_in_order(
    watcher: Watcher, client: httpx.AsyncClient
) -> None:
    """Through whatever of the above ran before, and a refused batch of its own between good ticks,
    the RELIANCE subscriber got exactly the published ticks: no gap, no loss, no duplicate, nothing
    that was refused."""
    await watcher.publish(client, count=5)
    good_then_bad = f'{{"ticks":[{{"symbol":"{SYMBOL}","price":1000}},{{"symbol":"{SYMBOL}","price":-1}}]}}'
    refused = await post_raw(watcher.server, good_then_bad)
    watcher.record_if_stored(refused)
    assert_error(refused, 422)
    await watcher.publish(client, count=5)
    assert watcher.task is not None and not watcher.task.done()
    kinds = [kind for kind, _ in watcher.received]
    assert kinds == ["tick"] * len(kinds), "the watcher saw a gap event"
    ticks = watcher.ticks()
    opening, rest = ticks[0], ticks[1:]
    assert opening["seq"] == 1
    assert [t["seq"] for t in ticks] == list(range(1, len(ticks) + 1))
    assert rest == watcher.published
    assert watcher.ids == [f"{t['epoch']}:{t['seq']}" for t in ticks]
    assert len(watcher.published) >= 10
