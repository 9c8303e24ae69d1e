"""Webhook: the server calls us. A receiver in the app, registered for the symbol, verifying each call.

Nothing is held open to the server; instead we must be reachable, and we must not trust what
arrives: every delivery's Standard Webhooks signature is checked, its timestamp must be within
5 minutes, and a `webhook-id` seen before is dropped (a replay). Refused calls count as `rejected`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, ClassVar

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from server.schema import MAX_MESSAGE_BYTES, Tick
from tui.modes.base import ModeClient, ModeError

__all__ = ["WebhookClient"]

HEALTH_EVERY = 10.0
"""Seconds between checks that our registration is still active on the server (each a request
this mode makes, counted with its deliveries)."""
SEEN_IDS = 10_000
"""How many delivery ids are remembered for replay detection."""


class WebhookClient(ModeClient):
    """Runs a receiver on 127.0.0.1 and a free port, registers it, and verifies every delivery.

    Example:

        client = WebhookClient("http://127.0.0.1:8000", "SBIN")
        await client.run()   # deregisters when stopped
    """

    mode: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Webhook"
    resumes_from_cursor: ClassVar[bool] = False

    def __init__(self, server_url: str, symbol: str, **options: Any) -> None:
        super().__init__(server_url, symbol, **options)
        self.receiver_url: str | None = None
        self.webhook_id: str | None = None
        self.secret: str | None = None
        """The secret the server signs our deliveries with (from registration)."""
        self._verifier: Webhook | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        """Open receiver connections, closed with the receiver."""

    def explain(self) -> str:
        return "the server calls us; we verify each call"

    async def receive(self) -> None:
        receiver = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = receiver.sockets[0].getsockname()[1]
        self.receiver_url = f"http://127.0.0.1:{port}/hook"
        try:
            response = await self.http.post(
                f"{self.server_url}/api/webhooks", json={"url": self.receiver_url, "symbols": [self.symbol]}
            )
            self.stats.requests += 1
            self.count_exchange(response)
            if response.status_code == 404:
                raise ModeError(f"unknown symbol {self.symbol!r}")
            response.raise_for_status()
            try:
                created = response.json()
                self.webhook_id, self.secret = str(created["id"]), str(created["secret"])
            except (ValueError, KeyError, TypeError):
                raise ModeError(f"unexpected registration answer: {response.text[:60]!r}") from None
            self._verifier = Webhook(self.secret)
            self.went_live()
            await self._watch_registration()
        finally:
            receiver.close()
            # Close their sockets rather than cancel them: asyncio's stream server reports a
            # cancelled handler as an error. Each then ends on its next read.
            handlers = list(self._handlers.items())
            for _, writer in handlers:
                writer.close()
            if handlers:
                await asyncio.wait([task for task, _ in handlers], timeout=2.0)
            await self._deregister()

    async def _watch_registration(self) -> None:
        """Return (so `run()` re-registers) when the server forgets or disables us."""
        while True:
            await asyncio.sleep(HEALTH_EVERY)
            response = await self.http.get(f"{self.server_url}/api/webhooks/{self.webhook_id}")
            self.stats.requests += 1
            self.count_exchange(response)
            if response.status_code == 404:
                raise ModeError("the server forgot our webhook")
            response.raise_for_status()
            if response.json().get("state") != "active":
                raise ModeError(f"webhook disabled: {response.json().get('disabled_reason')}")

    async def _deregister(self) -> None:
        webhook_id, self.webhook_id = self.webhook_id, None
        if webhook_id is None or self._http is None:
            return
        with contextlib.suppress(httpx.HTTPError, asyncio.CancelledError):
            response = await asyncio.wait_for(self._http.delete(f"{self.server_url}/api/webhooks/{webhook_id}"), 2.0)
            self.stats.requests += 1
            self.count_exchange(response)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A minimal HTTP/1.1 keep-alive handler: one delivery per request."""
        task = asyncio.current_task()
        if task is not None:
            self._handlers[task] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                if length > MAX_MESSAGE_BYTES:
                    writer.write(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    return
                body = await reader.readexactly(length)
                status = self._take(headers, body)
                answer = b"HTTP/1.1 %d OK\r\ncontent-length: 0\r\n\r\n" % status
                self.stats.wire_bytes_received += len(head) + length  # the server's delivery
                self.stats.wire_bytes_sent += len(answer)  # our answer
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            if task is not None:
                self._handlers.pop(task, None)
            writer.close()

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        """Verify one delivery and accept its tick; the HTTP status to answer."""
        self.stats.requests += 1
        verifier = self._verifier
        if verifier is None:
            self.stats.rejected += 1
            return 503
        try:
            payload = verifier.verify(body, headers)  # signature, and timestamp within 5 minutes
            tick = Tick.model_validate(payload["data"])
        except (WebhookVerificationError, ValueError, KeyError, TypeError):
            self.stats.rejected += 1
            return 401
        delivery_id = headers["webhook-id"]
        if delivery_id in self._seen:
            self.stats.rejected += 1  # a replay: acknowledged, so a genuine retry stops, but dropped
            return 200
        self._remember(delivery_id)
        self.accept(tick, len(body))
        return 204

    def _remember(self, delivery_id: str) -> None:
        self._seen.add(delivery_id)
        self._seen_order.append(delivery_id)
        if len(self._seen_order) > SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())
