"""Webhook endpoints and their delivery: signed (Standard Webhooks), in order, retried, SSRF-safe.

Each endpoint has one bounded queue and one delivery task, so its ticks go out in order and a
slow or dead receiver holds up nobody else. Targets are checked against an allow-list after DNS
resolution, at registration and again before every attempt (a name can be re-pointed).

A receiver cannot hold the server either: an attempt has one deadline for everything (the check,
connecting, sending, the whole answer), so an answer trickled a byte at a time is a failed attempt
like any other, and only the first `webhook_max_response` bytes of an answer's body are read.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from server.hub import Entry, Hub, Listener, Subscription
from server.settings import Settings

__all__ = [
    "Endpoint",
    "TargetRefused",
    "WebhookDispatcher",
    "check_target",
    "new_endpoint_id",
    "new_secret",
    "reaches_beyond_loopback",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
MAX_RETRY_AFTER = 300.0
"""A receiver's `retry-after` is honoured up to this many seconds."""


def reaches_beyond_loopback(networks: Iterable[IPNetwork]) -> bool:
    """Whether an allow-list lets webhooks reach any address that is not this machine's loopback."""
    return any(
        not any(network.version == loop.version and network.subnet_of(loop) for loop in LOOPBACK)  # type: ignore[arg-type]
        for network in networks
    )


class TargetRefused(ValueError):
    """A webhook URL that is not http(s) or resolves outside the allow-list."""


async def check_target(url: str, allowed: Iterable[IPNetwork]) -> None:
    """Refuse a URL unless it is http(s), one httpx can request, and every address its host
    resolves to is allowed."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise TargetRefused("webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise TargetRefused(f"webhook URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"webhook URL must be http or https, not {parts.scheme or 'nothing'!r}")
    host = parts.hostname
    if not host:
        raise TargetRefused("webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("webhook URL has an invalid port") from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise TargetRefused(f"webhook host {host!r} does not resolve") from None
    networks = tuple(allowed)
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in network for network in networks if address.version == network.version):
            raise TargetRefused(f"webhook host {host!r} resolves to {address}, outside the allow-list")


def new_endpoint_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(eq=False)
class Endpoint(Listener):
    """One registered receiver: its queue of ticks, its delivery state and counters."""

    id: str
    url: str
    symbols: list[str]
    secret: str
    queue_limit: int
    queue: deque[Entry] = field(default_factory=deque)
    state: str = "active"
    """active; failing (the last attempt failed, `last_error` says why; retried with backoff);
    disabled (given up, `disabled_reason` says why)."""
    disabled_reason: str | None = None
    delivered: int = 0
    failed_attempts: int = 0
    failure_streak: int = 0
    """Failed attempts since the last success: the backoff's exponent."""
    dropped: int = 0
    last_status: int | None = None
    last_error: str | None = None
    failing_since: float | None = None
    task: asyncio.Task[None] | None = None
    subscriptions: list[Subscription] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    """Per symbol, the last `seq` this endpoint is done with (delivered, or given up when disabled):
    where another process resumes its deliveries (`server.webhook_registry`)."""

    def __post_init__(self) -> None:
        Listener.__init__(self)
        self.signer = Webhook(self.secret)

    def on_entry(self, entry: Entry) -> None:
        if self.state == "disabled":
            return
        if len(self.queue) >= self.queue_limit:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(entry)
        self.wake()

    def on_beat(self) -> None:
        pass

    def disable(self, reason: str) -> None:
        self.state = "disabled"
        self.disabled_reason = reason
        self.queue.clear()
        self.wake()

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "symbols": self.symbols,
            "state": self.state,
            "disabled_reason": self.disabled_reason,
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "pending": len(self.queue),
            "dropped": self.dropped,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


class WebhookDispatcher:
    """Registers endpoints on the hub's topics and runs one delivery task per endpoint."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.settings = settings
        self.allowed: tuple[IPNetwork, ...] = LOOPBACK + tuple(settings.webhook_allow)
        self.endpoints: dict[str, Endpoint] = {}
        self.deliveries = 0
        self.failures = 0
        self._http: httpx.AsyncClient | None = None
        self._random = random.Random()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, timeout=self.settings.webhook_timeout)
        return self._http

    def adopt(
        self, endpoint_id: str, url: str, symbols: list[str], secret: str, after: dict[str, int] | None = None
    ) -> Endpoint:
        """Deliver to an endpoint from now on; with `after` (its cursors, in the hub's epoch), first
        every tick newer than them that history still holds."""
        endpoint = Endpoint(
            id=endpoint_id, url=url, symbols=symbols, secret=secret, queue_limit=self.settings.webhook_queue
        )
        self.endpoints[endpoint.id] = endpoint
        for symbol in symbols:
            topic = self.hub.topic(symbol)
            backlog = topic.after(after[symbol]) if after is not None and symbol in after else None
            endpoint.cursors[symbol] = topic.head_seq
            if backlog and after is not None:
                endpoint.cursors[symbol] = after[symbol]
                for entry in backlog:
                    endpoint.on_entry(entry)
        endpoint.subscriptions = [self.hub.subscribe(symbol, endpoint) for symbol in symbols]
        endpoint.task = asyncio.create_task(self._deliver_forever(endpoint), name=f"webhook {endpoint.id}")
        return endpoint

    async def remove(self, endpoint_id: str) -> bool:
        endpoint = self.endpoints.pop(endpoint_id, None)
        if endpoint is None:
            return False
        for subscription in endpoint.subscriptions:
            subscription.cancel()
        if endpoint.task is not None:
            endpoint.task.cancel()
            await asyncio.gather(endpoint.task, return_exceptions=True)
        return True

    def detach_all(self) -> list[asyncio.Task[None]]:
        """Stop delivering to every endpoint now, without awaiting: the tasks to wait for."""
        tasks: list[asyncio.Task[None]] = []
        for endpoint in self.endpoints.values():
            for subscription in endpoint.subscriptions:
                subscription.cancel()
            if endpoint.task is not None:
                endpoint.task.cancel()
                tasks.append(endpoint.task)
        self.endpoints.clear()
        return tasks

    async def close(self) -> None:
        for endpoint_id in list(self.endpoints):
            await self.remove(endpoint_id)
        if self._http is not None:
            await self._http.aclose()

    async def _deliver_forever(self, endpoint: Endpoint) -> None:
        while endpoint.state != "disabled":
            if not endpoint.queue:
                await endpoint.sleep()
                continue
            entry = endpoint.queue[0]
            retry_in = await self._attempt(endpoint, entry)
            if retry_in is None:
                endpoint.cursors[entry.symbol] = entry.seq
                if endpoint.queue and endpoint.queue[0] is entry:
                    endpoint.queue.popleft()
                continue
            if endpoint.state != "disabled":
                await asyncio.sleep(retry_in)

    async def _attempt(self, endpoint: Endpoint, entry: Entry) -> float | None:
        """One try: None when done with this tick (delivered, or the endpoint is now disabled),
        else the seconds to wait before trying it again."""
        tick = entry.tick
        msg_id = f"msg_{tick.epoch}_{tick.symbol}_{tick.seq}"
        now = datetime.now(UTC)
        body = (
            b'{"type":"tick","timestamp":"%s","data":%s}'
            % (now.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode(), entry.json)
        ).decode()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": endpoint.signer.sign(msg_id, now, body),
        }
        retry_after: float | None = None
        deadline = self.settings.webhook_timeout
        try:
            async with asyncio.timeout(deadline):
                await check_target(endpoint.url, self.allowed)
                status, retry_after_header = await self._post(endpoint.url, body, headers)
            endpoint.last_status = status
            if 200 <= status < 300:
                endpoint.delivered += 1
                endpoint.failing_since = None
                endpoint.failure_streak = 0
                endpoint.last_error = None
                endpoint.state = "active"
                self.deliveries += 1
                return None
            if status == 410:
                endpoint.disable("the receiver answered 410 Gone")
                self.failures += 1
                return None
            endpoint.last_error = f"HTTP {status}"
            retry_after = parse_retry_after(retry_after_header)
        except TimeoutError:
            endpoint.last_error = f"no complete answer within the {deadline:g} s deadline"
        except TargetRefused as exc:  # (a name re-pointed since it was registered)
            endpoint.last_error = f"not sent: {exc}"
        except httpx.HTTPError as exc:
            endpoint.last_error = f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
        except (httpx.InvalidURL, ValueError) as exc:  # (refused at registration; a request that cannot even
            endpoint.last_error = f"not sent: {exc}"  # be made must still show here, not end the task)
        endpoint.state = "failing"
        endpoint.failed_attempts += 1
        self.failures += 1
        endpoint.failure_streak += 1
        streak = endpoint.failure_streak
        if endpoint.failing_since is None:
            endpoint.failing_since = time.monotonic()
        elif time.monotonic() - endpoint.failing_since > self.settings.webhook_disable_after:
            endpoint.disable(f"failing for over {self.settings.webhook_disable_after:g} s: {endpoint.last_error}")
            return None
        ceiling = min(self.settings.webhook_retry_cap, self.settings.webhook_retry_base * 2 ** (streak - 1))
        backoff = self._random.uniform(ceiling / 2, ceiling)
        return max(backoff, retry_after or 0.0)

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> tuple[int, str | None]:
        """POST one delivery: (status, retry-after). At most `webhook_max_response` bytes of the
        answer's body are read; past them the response is closed unread, which drops the
        connection (a complete small answer leaves it open for the next delivery)."""
        limit = self.settings.webhook_max_response
        async with self.http.stream("POST", url, content=body, headers=headers) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > limit:
                    break
            return response.status_code, response.headers.get("retry-after")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `retry-after` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
