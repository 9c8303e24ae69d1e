"""Webhook: the server calls us. A receiver in the app, registered for the symbol, verifying each call.

Nothing is held open to the server; instead we must be reachable, and we must not trust what
arrives: every delivery's Standard Webhooks signature is checked, its timestamp must be within
5 minutes, and a `webhook-id` seen before is dropped (a replay). Refused calls count as `rejected`.

Nor do we trust the server: our own requests to it (register, look, deregister) each have one
deadline for everything and read at most `ANSWER_LIMIT` bytes of its answer. A server with a
`--webhook-token` is sent ours (`pushpull-tui --webhook-token`, or `PUSHPULL_WEBHOOK_TOKEN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from server.schema import MAX_MESSAGE_BYTES, Tick
from tui.modes.base import ModeClient, ModeError
from tui.modes.wire import request_bytes, response_head_bytes

__all__ = ["WebhookClient"]

HEALTH_EVERY = 10.0
"""Seconds between checks that our registration is still active on the server (each a request
this mode makes, counted with its deliveries)."""
SEEN_IDS = 10_000
"""How many delivery ids are remembered for replay detection."""
ANSWER_LIMIT = 64 * 1024
"""Bytes of the server's answer read for our own requests (a few hundred are expected)."""
REQUEST_DEADLINE = 10.0
"""Seconds one of our own requests may take in all, its whole answer included."""
DEREGISTER_DEADLINE = 2.0
"""Seconds deregistering may take when we stop (the app is waiting to quit)."""


class WebhookClient(ModeClient):
    """Runs a receiver on 127.0.0.1 and a free port, registers it, and verifies every delivery.

    Example:

        client = WebhookClient("http://127.0.0.1:8000", "SBIN", webhook_token=None)
        await client.run()   # deregisters when stopped
    """

    mode: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Webhook"
    resumes_from_cursor: ClassVar[bool] = False

    def __init__(
        self,
        server_url: str,
        symbol: str,
        *,
        webhook_token: str | None = None,
        inbound: Callable[[str], str] | None = None,
        release: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(server_url, symbol, **options)
        self.inbound = inbound
        """What the server is told to call instead of the receiver itself: an emulated link's
        relay in front of it (`tui.link`), so deliveries cross the link too. None: the receiver."""
        self.release = release
        """Told the receiver's URL when it closes, so the link stops relaying to it."""
        self.webhook_token = webhook_token
        """Sent as a bearer token when registering (a server with `--webhook-token` needs it)."""
        self.request_deadline = REQUEST_DEADLINE
        """Seconds one of our own requests to the server may take in all, its answer included."""
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
        target = self.inbound(self.receiver_url) if self.inbound is not None else self.receiver_url
        try:
            token = {"authorization": f"Bearer {self.webhook_token}"} if self.webhook_token else {}
            response, body = await self._ask(
                "POST", "/api/webhooks", payload={"url": target, "symbols": [self.symbol]}, headers=token
            )
            if response.status_code == 404:
                raise ModeError(f"unknown symbol {self.symbol!r}")
            if response.status_code == 401:
                given = "a wrong" if self.webhook_token else "no"
                raise ModeError(f"the server needs its webhook token to register; we sent {given} --webhook-token")
            response.raise_for_status()
            try:
                created = json.loads(body)
                self.webhook_id, self.secret = str(created["id"]), str(created["secret"])
            except (ValueError, KeyError, TypeError):
                raise ModeError(f"unexpected registration answer: {body[:60]!r}") from None
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
            if self.release is not None:
                self.release(self.receiver_url)

    async def _watch_registration(self) -> None:
        """Return (so `run()` re-registers) when the server forgets or disables us. While its
        deliveries to us fail it says `failing`: they are retried, so we keep waiting."""
        while True:
            await asyncio.sleep(HEALTH_EVERY)
            response, body = await self._ask("GET", f"/api/webhooks/{self.webhook_id}")
            if response.status_code == 404:
                raise ModeError("the server forgot our webhook")
            response.raise_for_status()
            try:
                described = json.loads(body)
                state, reason = described.get("state"), described.get("disabled_reason")
            except (ValueError, AttributeError):
                raise ModeError(f"unexpected webhook state: {body[:60]!r}") from None
            if state == "disabled":
                raise ModeError(f"webhook disabled: {reason}")

    async def _deregister(self) -> None:
        webhook_id, self.webhook_id = self.webhook_id, None
        if webhook_id is None or self._http is None:
            return
        with contextlib.suppress(httpx.HTTPError, ModeError, TimeoutError, asyncio.CancelledError):
            await self._ask("DELETE", f"/api/webhooks/{webhook_id}", deadline=DEREGISTER_DEADLINE)

    async def _ask(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """One request to the server and its answer's body, all within `deadline` seconds
        (default `request_deadline`; else `TimeoutError`, retried as "timed out") and at most
        `ANSWER_LIMIT` bytes of it (else `ModeError`): a server that trickles or floods its
        answer cannot hold or fill us. Asked uncompressed, so the bytes counted are the bytes
        received."""
        request = self.http.build_request(
            method, self.server_url + path, json=payload, headers={"accept-encoding": "identity", **(headers or {})}
        )
        self.stats.requests += 1
        self.stats.wire_bytes_sent += request_bytes(request)
        body = bytearray()
        async with asyncio.timeout(self.request_deadline if deadline is None else deadline):
            response = await self.http.send(request, stream=True)
            try:
                self.stats.wire_bytes_received += response_head_bytes(response)
                async for chunk in response.aiter_raw():
                    body += chunk
                    self.stats.wire_bytes_received += len(chunk)
                    if len(body) > ANSWER_LIMIT:
                        raise ModeError(f"the server's answer to {method} {path} is over {ANSWER_LIMIT} bytes")
            finally:
                await response.aclose()
        return response, bytes(body)

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
