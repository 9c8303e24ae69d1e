"""The webhook pane's receiver: it registers, verifies every call, refuses forgeries and replays."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from tests.helpers import RunningServer, ServerFactory, prices, publish, raw_peer, running_client, until
from tui.modes import Backoff, ConnectionState, WebhookClient

WAIT = 30.0


async def test_a_webhook_pane_receives_every_tick_in_order_and_deregisters(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server = shared_server
    client = WebhookClient(server.url, own_symbol, backoff=Backoff(base=0.05, cap=0.2))
    seen: list[int] = []
    client.on_tick = lambda tick: seen.append(tick.seq)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        async with running_client(client):
            await until(lambda: client.state is ConnectionState.LIVE)
            webhook_id = client.webhook_id
            assert client.receiver_url is not None and "the server calls us" in client.explain()
            await publish(http, server, own_symbol, prices(20))
            await until(lambda: len(seen) == 20)
            assert seen == list(range(2, 22))
            assert client.stats.missed == 0 and client.stats.rejected == 0
            assert client.stats.requests >= 21  # 20 deliveries, its registration (and any check since)
        assert (await http.get(f"{server.url}/api/webhooks/{webhook_id}")).status_code == 404


async def test_forged_stale_and_replayed_deliveries_are_rejected(shared_server: RunningServer, own_symbol: str) -> None:
    server = shared_server
    client = WebhookClient(server.url, own_symbol, backoff=Backoff(base=0.05, cap=0.2))
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running_client(client):
        await until(lambda: client.state is ConnectionState.LIVE)
        await publish(http, server, own_symbol, prices(1))
        await until(lambda: client.stats.updates == 1)
        assert client.receiver_url is not None
        tick = client.last_tick
        assert tick is not None
        body = f'{{"type":"tick","timestamp":"2026-01-01T00:00:00Z","data":{tick.model_dump_json()}}}'

        wrong_secret = "whsec_" + "A" * 32
        now = datetime.now(UTC)
        forged = await http.post(
            client.receiver_url, content=body, headers=headers_for(wrong_secret, "msg_x", now, body)
        )
        assert forged.status_code == 401
        secret = client.secret
        assert secret is not None
        stale = now - timedelta(minutes=10)  # properly signed, but older than the 5 minutes allowed
        late = await http.post(client.receiver_url, content=body, headers=headers_for(secret, "msg_y", stale, body))
        assert late.status_code == 401
        # a replay of a genuine delivery id
        first_id = f"msg_{tick.epoch}_{own_symbol}_{tick.seq}"
        replay = await http.post(client.receiver_url, content=body, headers=headers_for(secret, first_id, now, body))
        assert replay.status_code == 200
        assert client.stats.rejected == 3
        assert client.stats.updates == 1 and client.stats.duplicates == 0


def headers_for(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
        "content-type": "application/json",
    }


# -- a token to register with, and a server that floods or trickles its answers (issue 13, items 8 and 13) --

WEBHOOK_TOKEN = "wh-token"


async def test_a_pane_registers_with_its_token(server_factory: ServerFactory) -> None:
    """A server whose allow-list reaches beyond loopback, so it has a `--webhook-token`: a pane
    with the token goes live and gets its ticks; one without it, or with a wrong one, is refused
    and says why."""
    server = server_factory("--no-feed", "--webhook-allow", "10.0.0.0/8", "--webhook-token", WEBHOOK_TOKEN)
    fast = Backoff(base=0.05, cap=0.2)
    refused = [
        WebhookClient(server.url, "TCS", backoff=fast),
        WebhookClient(server.url, "TCS", backoff=fast, webhook_token="nope"),
    ]
    client = WebhookClient(server.url, "TCS", backoff=fast, webhook_token=WEBHOOK_TOKEN)
    async with (
        asyncio.timeout(WAIT),
        httpx.AsyncClient() as http,
        running_client(client),
        running_client(refused[0]),
        running_client(refused[1]),
    ):
        await until(lambda: client.state is ConnectionState.LIVE)
        await publish(http, server, "TCS", prices(3))
        await until(lambda: client.stats.updates == 3)
        await until(lambda: all(c.error is not None for c in refused))
        assert all(c.state is not ConnectionState.LIVE for c in refused)
        assert "sent no --webhook-token" in str(refused[0].error), refused[0].error
        assert "sent a wrong --webhook-token" in str(refused[1].error), refused[1].error
        assert (await http.get(server.url + "/api/stats")).json()["webhooks"]["endpoints"] == 1


def test_the_app_and_the_bench_pass_the_token_to_webhook_panes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--webhook-token` (or `PUSHPULL_WEBHOOK_TOKEN`) reaches every webhook client the app or the
    bench makes; other modes are made as before."""
    from tui.__main__ import parse_args
    from tui.app import PushPullApp
    from tui.bench import build_parser

    url = "http://127.0.0.1:9"
    assert parse_args(["--server", url]).webhook_token is None
    assert parse_args(["--server", url, "--webhook-token", "flag"]).webhook_token == "flag"
    monkeypatch.setenv("PUSHPULL_WEBHOOK_TOKEN", "from-env")
    assert parse_args(["--server", url]).webhook_token == "from-env"
    assert parse_args(["--server", url, "--webhook-token", "flag"]).webhook_token == "flag"
    assert build_parser().parse_args(["--server", url]).webhook_token == "from-env"
    app = PushPullApp([url], modes=["webhook", "poll"], webhook_token="t")
    webhook = app.make_client("webhook", "TCS")
    assert isinstance(webhook, WebhookClient) and webhook.webhook_token == "t"
    assert app.make_client("poll", "TCS").mode == "poll"


def hostile_server(answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> AbstractAsyncContextManager[str]:
    """A raw HTTP server on loopback that reads a request and answers with `answer`; its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)

    return raw_peer(handle)


async def test_a_flooded_registration_answer_is_not_read_whole(own_symbol: str) -> None:
    """A "server" answers the registration with 300 MB as fast as it is taken: the pane reads 64
    KiB of it, says the answer is too big, and never goes live; the flood got no further than the
    sockets' buffers."""
    sent: list[int] = []
    block = bytes(64 * 1024)
    huge = 300 * 1024 * 1024

    async def flood(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % huge)
        written = 0
        try:
            while written < huge:
                writer.write(block)
                await writer.drain()
                written += len(block)
        finally:
            sent.append(written)

    async with asyncio.timeout(WAIT), hostile_server(flood) as url:
        client = WebhookClient(url, own_symbol, backoff=Backoff(base=0.05, cap=0.2))
        async with running_client(client):
            await until(lambda: len(sent) >= 2)  # refused, and retried
            assert "is over 65536 bytes" in str(client.error), client.error
            assert client.state is not ConnectionState.LIVE and client.webhook_id is None
        assert max(sent) < 40 * 1024 * 1024, sent


async def test_a_trickled_registration_answer_times_out_and_stop_ends_the_pane(own_symbol: str) -> None:
    """A "server" answers a byte every 20 ms, forever: each registration fails at the pane's
    deadline ("timed out", retried), and `stop()` ends `run()` at once."""
    attempts = 0

    async def trickle(writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        for byte in b"HTTP/1.1 201 Created\r\ncontent-length: 100000\r\n\r\n" + b"{" * 100_000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    async with asyncio.timeout(WAIT), hostile_server(trickle) as url:
        client = WebhookClient(url, own_symbol, backoff=Backoff(base=0.05, cap=0.2))
        client.request_deadline = 0.5
        async with running_client(client):
            await until(lambda: attempts >= 2 and client.error == "timed out")
            assert client.state is not ConnectionState.LIVE
