"""The webhook pane's receiver: it registers, verifies every call, refuses forgeries and replays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from standardwebhooks import Webhook

from tests.helpers import RunningServer, prices, publish, until
from tui.modes import Backoff, ConnectionState, WebhookClient

WAIT = 30.0


@asynccontextmanager
async def running(client: WebhookClient) -> AsyncIterator[None]:
    task = asyncio.create_task(client.run())
    try:
        yield
    finally:
        await client.stop()
        await asyncio.wait_for(task, 10)


async def test_a_webhook_pane_receives_every_tick_in_order_and_deregisters(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server = shared_server
    client = WebhookClient(server.url, own_symbol, backoff=Backoff(base=0.05, cap=0.2))
    seen: list[int] = []
    client.on_tick = lambda tick: seen.append(tick.seq)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        async with running(client):
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
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http, running(client):
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
