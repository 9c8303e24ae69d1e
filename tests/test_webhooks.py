"""Webhooks end to end: a receiver no one here wrote (the `standardwebhooks` verifier behind a plain
HTTP handler) registers, and every tick arrives signed, in order, once, through failures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.helpers import RunningServer, ServerFactory, prices, publish, until

SERVING = ("fast path", "redis broker")
"""Registrations live in the process, or in Redis with one process sending (`server.webhook_registry`)."""
WAIT = 30.0
Reply = tuple[int, dict[str, str]]


@dataclass
class Receiver:
    """A plain HTTP/1.1 handler on loopback that records every request and answers as told."""

    answer: Callable[[int], Reply] = lambda attempt: (204, {})
    requests: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((time.monotonic(), headers, body))
                status, extra = self.answer(len(self.requests))
                reply = f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n"
                reply += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write((reply + "\r\n").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    try:
        yield receiver
    finally:
        server.close()


async def register(http: httpx.AsyncClient, server: RunningServer, url: str, symbols: list[str]) -> dict[str, str]:
    response = await http.post(server.url + "/api/webhooks", json={"url": url, "symbols": symbols})
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    assert created["secret"].startswith("whsec_")
    return created


def verified_seqs(receiver: Receiver, secret: str) -> list[int]:
    """Verify every delivery as a third party would; the seqs of the successful ones, in order."""
    verifier = Webhook(secret)
    seqs = []
    for _, headers, body in receiver.requests:
        payload = verifier.verify(body, headers)
        assert payload["type"] == "tick"
        seqs.append(payload["data"]["seq"])
    return seqs


async def test_a_receiver_gets_100_ticks_in_order_each_verifying(server: RunningServer) -> None:
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, receiving(Receiver()) as receiver:
        created = await register(http, server, receiver.url, ["RELIANCE"])
        await publish(http, server, "RELIANCE", prices(100))
        await until(lambda: len(receiver.requests) >= 100)
        assert verified_seqs(receiver, created["secret"]) == list(range(2, 102))
        ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
        assert len(set(ids)) == 100

        async def counted() -> bool:  # the receiver logs a request before the server has its answer
            state = (await http.get(server.url + f"/api/webhooks/{created['id']}")).json()
            return bool(state["delivered"] == 100)

        await until(counted)
        state = (await http.get(server.url + f"/api/webhooks/{created['id']}")).json()
        assert state["state"] == "active" and state["delivered"] == 100 and state["pending"] == 0
        stats = (await http.get(server.url + "/api/stats")).json()["webhooks"]
        assert stats["endpoints"] == 1 and stats["deliveries"] == 100


async def test_failed_attempts_are_retried_and_every_tick_still_arrives_in_order_once(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server = shared_server
    failing = Receiver(answer=lambda attempt: (500, {}) if attempt <= 3 else (200, {}))
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, receiving(failing) as receiver:
        created = await register(http, server, receiver.url, [own_symbol])
        await publish(http, server, own_symbol, prices(5))
        await until(lambda: len(receiver.requests) >= 8)
        seqs = verified_seqs(receiver, created["secret"])
        assert seqs[:4] == [2, 2, 2, 2]  # three 500s, then the same tick again
        assert seqs[3:] == [2, 3, 4, 5, 6]

        async def counted() -> bool:  # the receiver logs a request before the server has its answer
            state = (await http.get(server.url + f"/api/webhooks/{created['id']}")).json()
            return bool(state["delivered"] == 5)

        await until(counted)
        state = (await http.get(server.url + f"/api/webhooks/{created['id']}")).json()
        assert state["failed_attempts"] == 3 and state["delivered"] == 5


async def test_retry_after_is_waited_for(shared_server: RunningServer, own_symbol: str) -> None:
    """A receiver that answers 503 with `retry-after: 30` is not asked again while a neighbour on the
    same tick fails twice and is retried twice on the backoff alone (0.25-0.5 s, then 0.5-1 s): a
    server that ignored `retry-after` would have retried within the first of those."""
    server = shared_server
    slow_down = Receiver(answer=lambda attempt: (503, {"retry-after": "30"}))
    neighbour = Receiver(answer=lambda attempt: (500, {}) if attempt <= 2 else (200, {}))
    async with (
        asyncio.timeout(WAIT),
        httpx.AsyncClient() as http,
        receiving(slow_down) as receiver,
        receiving(neighbour) as witness,
    ):
        created = await register(http, server, receiver.url, [own_symbol])
        await register(http, server, witness.url, [own_symbol])
        await publish(http, server, own_symbol, prices(1))
        await until(lambda: len(witness.requests) >= 3)  # two backoffs have passed, on the server's clock
        assert len(receiver.requests) == 1
        url = server.url + f"/api/webhooks/{created['id']}"
        state = (await http.get(url)).json()
        assert (state["last_status"], state["pending"], state["delivered"]) == (503, 1, 0), state  # held, not lost
        assert (await http.delete(url)).status_code == 204


async def test_410_disables_the_endpoint_at_once(shared_server: RunningServer, own_symbol: str) -> None:
    """After a 410 the endpoint gets nothing more: not the rest of its queue, not later ticks, which
    a witness endpoint registered on the same symbol afterwards does receive."""
    server = shared_server
    gone = Receiver(answer=lambda attempt: (410, {}))
    async with (
        asyncio.timeout(WAIT),
        httpx.AsyncClient() as http,
        receiving(gone) as receiver,
        receiving(Receiver()) as witness,
    ):
        created = await register(http, server, receiver.url, [own_symbol])
        await publish(http, server, own_symbol, prices(3))
        url = server.url + f"/api/webhooks/{created['id']}"
        state: dict[str, Any] = {}

        async def disabled() -> bool:
            nonlocal state
            state = (await http.get(url)).json()
            return bool(state["state"] == "disabled")

        await until(disabled)
        assert "410" in state["disabled_reason"] and state["pending"] == 0
        await register(http, server, witness.url, [own_symbol])
        later = await publish(http, server, own_symbol, prices(3, start=2000.0))
        await until(lambda: len(witness.requests) >= len(later))  # the server has handed these ticks out
        assert len(receiver.requests) == 1
        assert (await http.delete(url)).status_code == 204
        assert (await http.get(url)).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://192.168.1.1:8080/hook",
        "http://0.0.0.0/",
        "http://nonexistent.invalid/",
        "not a url",
    ],
)
async def test_registration_outside_the_allow_list_is_refused(shared_server: RunningServer, url: str) -> None:
    server = shared_server
    async with httpx.AsyncClient() as http:
        response = await http.post(server.url + "/api/webhooks", json={"url": url, "symbols": ["RELIANCE"]})
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


async def test_a_name_resolving_outside_the_allow_list_is_refused_and_loopback_names_are_allowed(
    shared_server: RunningServer,
) -> None:
    """Checked after resolution: `localhost` is loopback (allowed); `167772161` and `0x0a000001`
    are names that resolve to 10.0.0.1 without looking like an address (refused)."""
    server = shared_server
    async with httpx.AsyncClient() as http:
        ok = await http.post(
            server.url + "/api/webhooks", json={"url": "http://localhost:9/hook", "symbols": ["RELIANCE"]}
        )
        assert ok.status_code == 201
        for name in ("167772161", "0x0a000001"):
            refused = await http.post(
                server.url + "/api/webhooks", json={"url": f"http://{name}/hook", "symbols": ["RELIANCE"]}
            )
            assert refused.status_code == 422, name
            assert "10.0.0.1" in refused.json()["detail"]
        assert (await http.delete(server.url + f"/api/webhooks/{ok.json()['id']}")).status_code == 204


async def test_bad_registrations(shared_server: RunningServer) -> None:
    server = shared_server
    async with httpx.AsyncClient() as http:
        url = server.url + "/api/webhooks"
        assert (await http.post(url, json={"url": "http://127.0.0.1:9/", "symbols": ["NOPE"]})).status_code == 404
        assert (await http.post(url, json={"url": "http://127.0.0.1:9/", "symbols": []})).status_code == 422
        assert (
            await http.post(url, json={"url": "http://127.0.0.1:9/", "symbols": ["TCS"], "x": 1})
        ).status_code == 422
        assert (await http.get(url + "/wh_missing")).status_code == 404
        assert (await http.delete(url + "/wh_missing")).status_code == 404


@pytest.mark.parametrize(
    "target",
    ["http://[::1/", "http://127.0.0.1:9\t/hook", "http://127.0.0.1:9/a hook", "http://127.0.0.1:9/\x00"],
    ids=["unclosed-ipv6-bracket", "tab", "space", "nul"],
)
async def test_a_url_httpx_cannot_request_is_refused_at_registration(shared_server: RunningServer, target: str) -> None:
    """422 saying why, not a 500, and not an endpoint whose deliveries die silently later (the
    module's server must also end without a traceback)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(shared_server.url + "/api/webhooks", json={"url": target, "symbols": ["TCS"]})
    assert response.status_code == 422, response.text
    assert "webhook URL" in response.json()["detail"]


def test_the_published_test_vector_signs_as_published() -> None:
    """The Standard Webhooks spec's example: this secret, id, timestamp and body give this signature."""
    from datetime import UTC, datetime

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    signature = Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(1614265330, UTC), body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert json.loads(body) == {"test": 2432232314}


async def test_an_endpoint_failing_for_too_long_is_disabled_and_says_so(server_factory: ServerFactory) -> None:
    server = server_factory("--no-feed", "--webhook-disable-after", "1")
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, receiving(Receiver(lambda n: (500, {}))) as rx:
        created = await register(http, server, rx.url, ["RELIANCE"])
        await publish(http, server, "RELIANCE", prices(2))
        url = server.url + f"/api/webhooks/{created['id']}"
        state: dict[str, object] = {}

        async def disabled() -> bool:
            nonlocal state
            state = (await http.get(url)).json()
            return state["state"] == "disabled"

        await until(disabled, step=0.1)
        assert "failing for over 1 s" in str(state["disabled_reason"])
        assert state["delivered"] == 0 and int(str(state["failed_attempts"])) >= 2


async def test_too_many_webhooks_is_429(server_factory: ServerFactory) -> None:
    server = server_factory("--no-feed", "--max-webhooks", "2")
    async with httpx.AsyncClient() as http:
        body = {"url": "http://127.0.0.1:9/hook", "symbols": ["RELIANCE"]}
        first = await http.post(server.url + "/api/webhooks", json=body)
        assert first.status_code == 201
        assert (await http.post(server.url + "/api/webhooks", json=body)).status_code == 201
        refused = await http.post(server.url + "/api/webhooks", json=body)
        assert refused.status_code == 429 and "at most 2" in refused.json()["detail"]
        assert (await http.delete(server.url + f"/api/webhooks/{first.json()['id']}")).status_code == 204
        assert (await http.post(server.url + "/api/webhooks", json=body)).status_code == 201
