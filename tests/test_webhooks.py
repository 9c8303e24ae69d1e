"""Webhooks end to end: a receiver no one here wrote (the `standardwebhooks` verifier behind a plain
HTTP handler) registers, and every tick arrives signed, in order, once, through failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from standardwebhooks import Webhook

from server.broker.memory import MemoryBroker
from server.hub import Hub
from server.runtime import Runtime
from server.settings import Settings
from server.transports.webhooks import check_token
from tests.helpers import RunningServer, ServerFactory, prices, publish, raw_peer, until

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


# -- hostile receivers, the cap under a crowd, and the registration token (issue 13, items 5 and 8) ---------

WEBHOOK_TOKEN = "wh-token"
HUGE = 300 * 1024 * 1024
"""A receiver's answer body that must never be read whole."""


async def read_request(reader: asyncio.StreamReader) -> None:
    """Read one HTTP/1.1 request (head and content-length body) and forget it."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    await reader.readexactly(length)


async def webhook_state(http: httpx.AsyncClient, server: RunningServer, webhook_id: str) -> dict[str, Any]:
    state: dict[str, Any] = (await http.get(server.url + f"/api/webhooks/{webhook_id}")).json()
    return state


async def test_a_huge_answer_is_read_only_up_to_the_cap_and_the_delivery_counts(server_factory: ServerFactory) -> None:
    """Each delivery is answered 200 with a 300 MB body, written as fast as the server takes it. The
    server reads a few KiB, drops the connection, and counts the delivery (the status decides): what
    the receiver got into its socket before the server hung up is the kernel's buffers, not 300 MB,
    and the server's memory does not grow by the body."""
    server = server_factory("--no-feed")
    sent: list[int] = []
    """Body bytes each connection's answer got written before the server hung up."""
    block = bytes(64 * 1024)

    async def answer_hugely(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % HUGE)
            written = 0
            try:
                while written < HUGE:
                    writer.write(block)
                    await writer.drain()
                    written += len(block)
            finally:
                sent.append(written)

    async with (
        asyncio.timeout(WAIT),
        httpx.AsyncClient() as http,
        raw_peer(answer_hugely, "/hook") as url,
    ):
        rss_before = (await http.get(server.url + "/api/stats")).json()["rss_bytes"]
        created = await register(http, server, url, ["RELIANCE"])
        await publish(http, server, "RELIANCE", prices(3))

        async def delivered() -> bool:
            return bool((await webhook_state(http, server, created["id"]))["delivered"] == 3)

        await until(delivered)
        state = await webhook_state(http, server, created["id"])
        assert (state["state"], state["failed_attempts"], state["last_status"]) == ("active", 0, 200), state
        await until(lambda: len(sent) == 3)
        assert max(sent) < 40 * 1024 * 1024, sent  # socket buffers at most, never the 300 MB
        rss_after = (await http.get(server.url + "/api/stats")).json()["rss_bytes"]
        assert rss_after - rss_before < 64 * 1024 * 1024, (rss_before, rss_after)
    assert "Traceback" not in server.stop()[1]


async def test_an_answer_trickled_byte_by_byte_fails_on_the_deadline_and_the_endpoint_is_disabled(
    server_factory: ServerFactory,
) -> None:
    """A receiver that answers a byte every 20 ms, forever: each attempt fails at the total deadline
    (not a per-read timeout, which every byte would reset) with `last_error` saying so, the endpoint
    says `failing` meanwhile, is retried, and is disabled by `--webhook-disable-after`."""
    server = server_factory("--no-feed", "--webhook-timeout", "0.5", "--webhook-disable-after", "1")
    attempts = 0
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        await read_request(reader)
        attempts += 1
        for byte in answer:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, raw_peer(trickle, "/hook") as url:
        created = await register(http, server, url, ["RELIANCE"])
        await publish(http, server, "RELIANCE", prices(1))
        seen: list[dict[str, Any]] = []

        async def disabled() -> bool:
            seen.append(await webhook_state(http, server, created["id"]))
            return bool(seen[-1]["state"] == "disabled")

        await until(disabled, step=0.05)
        state = seen[-1]
        assert "failing" in {s["state"] for s in seen}, seen
        assert "0.5 s deadline" in state["last_error"] and "0.5 s deadline" in state["disabled_reason"], state
        assert state["delivered"] == 0 and state["failed_attempts"] >= 2 and attempts >= 2, (state, attempts)
    assert "Traceback" not in server.stop()[1]


async def test_an_endpoint_whose_deliveries_fail_says_so_in_its_state(server_factory: ServerFactory) -> None:
    """Nothing listens at the target: every attempt fails before a request is sent. The endpoint
    says `failing` with `last_error`, not `active`."""
    from tests.helpers import free_port

    server = server_factory("--no-feed")
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        created = await register(http, server, f"http://127.0.0.1:{free_port()}/hook", ["RELIANCE"])
        await publish(http, server, "RELIANCE", prices(1))
        state: dict[str, Any] = {}

        async def failed() -> bool:
            nonlocal state
            state = await webhook_state(http, server, created["id"])
            return bool(state["failed_attempts"] >= 1)

        await until(failed)
        assert state["state"] == "failing" and "ConnectError" in state["last_error"], state
        assert state["pending"] == 1 and state["delivered"] == 0, state


async def test_400_concurrent_registrations_never_pass_the_cap(server_factory: ServerFactory) -> None:
    """`--max-webhooks 100` and 400 registrations at once, each of a name the server must resolve
    (`localhost`: an awaited lookup between any first look at the count and the store): exactly
    100 are registered, the other 300 get 429, and the server holds 100."""
    server = server_factory("--no-feed", "--max-webhooks", "100")
    body = {"url": "http://localhost:9/hook", "symbols": ["RELIANCE"]}
    async with asyncio.timeout(WAIT), contextlib.AsyncExitStack() as stack:
        crowd = [await stack.enter_async_context(httpx.AsyncClient(timeout=WAIT)) for _ in range(4)]
        http = crowd[0]  # (400 connections in one httpx pool take it seconds to hand out; 4 pools of 100 do not)
        url = server.url + "/api/webhooks"
        answers = await asyncio.gather(*(crowd[i % 4].post(url, json=body) for i in range(400)))
        codes = [answer.status_code for answer in answers]
        assert (codes.count(201), codes.count(429)) == (100, 300), {a.text for a in answers if a.status_code != 201}
        ids = {answer.json()["id"] for answer in answers if answer.status_code == 201}
        assert len(ids) == 100
        assert (await http.post(server.url + "/api/webhooks", json=body)).status_code == 429
        for webhook_id in ids:
            assert (await http.get(server.url + f"/api/webhooks/{webhook_id}")).status_code == 200

        async def all_adopted() -> bool:  # (with Redis, the sender adopts registrations every 0.25 s)
            return bool((await http.get(server.url + "/api/stats")).json()["webhooks"]["endpoints"] == 100)

        await until(all_adopted)


async def test_registration_needs_the_token_when_one_is_set(server_factory: ServerFactory) -> None:
    """With `--webhook-allow` beyond loopback and `--webhook-token`: no token or a wrong one is 401
    with a JSON error (and nothing registered), the token is 201."""
    server = server_factory("--no-feed", "--webhook-allow", "10.0.0.0/8", "--webhook-token", WEBHOOK_TOKEN)
    body = {"url": "http://127.0.0.1:9/hook", "symbols": ["RELIANCE"]}
    url = server.url + "/api/webhooks"
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {WEBHOOK_TOKEN}"}):
            refused = await http.post(url, json=body, headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert "bearer token" in refused.json()["detail"] and refused.headers["www-authenticate"] == "Bearer"
        assert (await http.get(server.url + "/api/stats")).json()["webhooks"]["endpoints"] == 0
        created = await http.post(url, json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert created.status_code == 201, created.text
        assert (await http.get(url + f"/{created.json()['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--webhook-allow", "10.0.0.0/8"], {}),
        (["--webhook-allow", "127.0.0.0/8", "192.168.0.0/16"], {}),
        (["--webhook-allow", "::/0"], {}),
        ([], {"PUSHPULL_WEBHOOK_ALLOW": "0.0.0.0/0"}),
    ],
    ids=["private-network", "loopback-and-lan", "every-ipv6", "from-the-environment"],
)
def test_an_allow_list_beyond_loopback_without_a_token_refuses_to_start(args: list[str], env: dict[str, str]) -> None:
    """One line on stderr naming `--webhook-token`, exit 2, no traceback."""
    import subprocess

    from tests.helpers import clean_env
    from tui.embedded import server_command

    result = subprocess.run(
        server_command(["--port", "0", *args]),
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pushpull-server: error: --webhook-allow"), result.stderr
    assert "--webhook-token" in lines[0]


def test_which_allow_lists_need_a_token() -> None:
    """Loopback (whole or in part) needs none; anything else does, and a token from the
    environment is as good as the flag."""
    from server.cli import parse_settings
    from server.commandline import UsageError

    assert (
        parse_settings(["--webhook-allow", "127.0.0.0/8", "::1/128", "127.1.2.0/24"], environ={}).webhook_token is None
    )
    with pytest.raises(UsageError, match="--webhook-token"):
        parse_settings(["--webhook-allow", "127.0.0.0/7"], environ={})
    settings = parse_settings(["--webhook-allow", "10.0.0.0/8"], environ={"PUSHPULL_WEBHOOK_TOKEN": "t"})
    assert settings.webhook_token == "t"
    assert parse_settings([], environ={"PUSHPULL_WEBHOOK_TOKEN": "t"}).webhook_token == "t"


def test_without_a_token_only_clients_on_this_machine_may_register() -> None:
    """A server listening beyond loopback (`--host 0.0.0.0`) without `--webhook-token` must not let
    another machine aim it at this machine's loopback services: 403 for a non-loopback client. (A
    call with the client's address: the tests may not reach beyond loopback.)"""
    open_runtime = Runtime(settings=Settings(), broker=MemoryBroker(), hub=Hub(("TCS",), 10))
    for local in ("127.0.0.1", "127.8.9.10", "::1"):
        check_token(open_runtime, None, local)
    for remote in ("192.168.1.20", "10.0.0.7", "2001:db8::1", None, "testclient"):
        with pytest.raises(HTTPException) as refused:
            check_token(open_runtime, None, remote)
        assert refused.value.status_code == 403 and "--webhook-token" in str(refused.value.detail)
    guarded = Runtime(settings=Settings(webhook_token="s3cret"), broker=MemoryBroker(), hub=Hub(("TCS",), 10))
    check_token(guarded, "Bearer s3cret", "192.168.1.20")
    with pytest.raises(HTTPException) as wrong:
        check_token(guarded, "Bearer nope", "127.0.0.1")
    assert wrong.value.status_code == 401
