"""Where webhook registrations live, and which process sends: this one, or the one holding a lease.

With the in-process broker the registry is the dispatcher itself (`LocalRegistry`). With Redis
(`SharedRegistry`) a registration made on any process is stored in Redis, so every process can
answer for it, and exactly one process, the holder of the `webhooks` lease, delivers: each tick
reaches each endpoint once, however many processes run. The sender writes each endpoint's counters
and cursors back to Redis every `SYNC_PERIOD`; a process that takes the lease over resumes every
endpoint from those cursors. Ticks delivered after the last write are delivered again then, under
the same `webhook-id`, which a receiver following Standard Webhooks drops as a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.broker import BrokerUnavailable
from server.broker.redis import RedisBroker
from server.hub import Hub
from server.webhooks import Endpoint, WebhookDispatcher, check_target, new_endpoint_id, new_secret

__all__ = ["LocalRegistry", "SharedRegistry", "TooManyWebhooks", "WebhookRegistry"]

logger = logging.getLogger("pushpull.webhooks")

REGISTRATIONS = "pushpull:webhooks"
STATUS = "pushpull:webhook-status"
ADD_IF_ROOM = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""
"""Store a registration unless the cap is reached, atomically across processes."""
SYNC_PERIOD = 0.25
"""Seconds between the sender's looks at the registrations (a new one waits at most this long, and
gets every tick since it registered) and its writes of counters and cursors."""


class TooManyWebhooks(Exception):
    """The registration would exceed `--max-webhooks`."""


class WebhookRegistry(Protocol):
    async def count(self) -> int: ...

    async def register(self, url: str, symbols: list[str], limit: int) -> tuple[str, str]:
        """Check the target, store the registration unless `limit` are stored: (id, secret).
        Raises `TargetRefused` or `TooManyWebhooks`."""
        ...

    async def describe(self, endpoint_id: str) -> dict[str, Any] | None: ...

    async def remove(self, endpoint_id: str) -> bool: ...

    async def send(self) -> None:
        """Deliver for every registration; run only while this process holds the `webhooks` lease."""
        ...


class LocalRegistry:
    """One process: the dispatcher holds the registrations and sends."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher

    async def count(self) -> int:
        return len(self.dispatcher.endpoints)

    async def register(self, url: str, symbols: list[str], limit: int) -> tuple[str, str]:
        await check_target(url, self.dispatcher.allowed)
        if len(self.dispatcher.endpoints) >= limit:  # (checked again after the awaited DNS lookup)
            raise TooManyWebhooks(limit)
        endpoint = self.dispatcher.adopt(new_endpoint_id(), url, symbols, new_secret())
        return endpoint.id, endpoint.secret

    async def describe(self, endpoint_id: str) -> dict[str, Any] | None:
        endpoint = self.dispatcher.endpoints.get(endpoint_id)
        return None if endpoint is None else endpoint.describe()

    async def remove(self, endpoint_id: str) -> bool:
        return await self.dispatcher.remove(endpoint_id)

    async def send(self) -> None:
        await asyncio.Event().wait()  # the dispatcher sends as endpoints register


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unavailable(exc: RedisError) -> BrokerUnavailable:
    return BrokerUnavailable(f"Redis is unreachable: {exc}")


class SharedRegistry:
    """Registrations in Redis; the lease holder's dispatcher sends (see the module docstring)."""

    def __init__(self, broker: RedisBroker, dispatcher: WebhookDispatcher, hub: Hub, instance: str) -> None:
        self.broker = broker
        self.client: aioredis.Redis = broker.client
        self.dispatcher = dispatcher
        self.hub = hub
        self.instance = instance
        self._add = self.client.register_script(ADD_IF_ROOM)
        self._refused: set[str] = set()

    async def count(self) -> int:
        try:
            return int(await self.client.hlen(REGISTRATIONS))
        except RedisError as exc:
            raise _unavailable(exc) from None

    async def register(self, url: str, symbols: list[str], limit: int) -> tuple[str, str]:
        await check_target(url, self.dispatcher.allowed)
        endpoint_id, secret = new_endpoint_id(), new_secret()
        cursors = {symbol: self.hub.topic(symbol).head_seq for symbol in symbols}
        record = {"url": url, "symbols": symbols, "secret": secret, "epoch": self.hub.epoch, "cursors": cursors}
        try:
            added = await self._add(keys=[REGISTRATIONS], args=[endpoint_id, json.dumps(record), limit])
        except RedisError as exc:
            raise _unavailable(exc) from None
        if not added:
            raise TooManyWebhooks(limit)
        return endpoint_id, secret

    async def describe(self, endpoint_id: str) -> dict[str, Any] | None:
        try:
            record = await self.client.hget(REGISTRATIONS, endpoint_id)
            if record is None:
                return None
            status = await self.client.hget(STATUS, endpoint_id)
        except RedisError as exc:
            raise _unavailable(exc) from None
        local = self.dispatcher.endpoints.get(endpoint_id)
        if local is not None:
            return {**local.describe(), "sender": self.instance}
        if status is not None:
            described: dict[str, Any] = json.loads(status)["described"]
            return described
        registered = json.loads(record)  # not adopted by a sender yet: as a fresh endpoint describes itself
        fresh = Endpoint(endpoint_id, registered["url"], registered["symbols"], registered["secret"], queue_limit=0)
        return {**fresh.describe(), "sender": None}

    async def remove(self, endpoint_id: str) -> bool:
        try:
            removed = int(await self.client.hdel(REGISTRATIONS, endpoint_id))
            await self.client.hdel(STATUS, endpoint_id)
        except RedisError as exc:
            raise _unavailable(exc) from None
        await self.dispatcher.remove(endpoint_id)
        return removed > 0

    async def send(self) -> None:
        try:
            while "webhooks" in self.broker.held:
                with contextlib.suppress(RedisError):  # the broker warns once per outage; queued deliveries go on
                    await self._sync()
                await asyncio.sleep(SYNC_PERIOD)
        finally:  # stop sending at once, every endpoint, even if this wait is itself cut short
            stopping = self.dispatcher.detach_all()
            await asyncio.shield(asyncio.gather(*stopping, return_exceptions=True))

    async def _sync(self) -> None:
        """Adopt new registrations, drop removed ones, write counters and cursors back."""
        records = await self.client.hgetall(REGISTRATIONS)
        wanted = {_text(key): _text(value) for key, value in records.items()}
        for endpoint_id in set(self.dispatcher.endpoints) - set(wanted):
            await self.dispatcher.remove(endpoint_id)
        for endpoint_id in set(wanted) - set(self.dispatcher.endpoints):
            record = json.loads(wanted[endpoint_id])
            unknown = [symbol for symbol in record["symbols"] if symbol not in self.hub.topics]
            if unknown:  # registered on a process that publishes other symbols than this one
                if endpoint_id not in self._refused:
                    self._refused.add(endpoint_id)
                    logger.warning(
                        "webhook %s follows %s, which this process does not publish; not sending it",
                        endpoint_id,
                        ", ".join(unknown),
                    )
                continue
            status_raw = await self.client.hget(STATUS, endpoint_id)
            status = json.loads(status_raw) if status_raw is not None else record
            after = status["cursors"] if status["epoch"] == self.hub.epoch else None
            endpoint = self.dispatcher.adopt(endpoint_id, record["url"], record["symbols"], record["secret"], after)
            described = status.get("described") or {}
            if described.get("state") == "disabled":
                endpoint.disable(described.get("disabled_reason") or "disabled")
            for counter in ("delivered", "failed_attempts", "dropped"):
                setattr(endpoint, counter, int(described.get(counter) or 0))
            await asyncio.sleep(0)  # hundreds to adopt at once must not stall the loop (and the leases)
        if self.dispatcher.endpoints:
            statuses = {
                endpoint_id: json.dumps(
                    {
                        "epoch": self.hub.epoch,
                        "cursors": endpoint.cursors,
                        "described": {**endpoint.describe(), "sender": self.instance},
                    }
                )
                for endpoint_id, endpoint in self.dispatcher.endpoints.items()
            }
            await self.client.hset(STATUS, mapping=statuses)  # type: ignore[arg-type]
        stale = {_text(key) for key in await self.client.hkeys(STATUS)} - set(wanted)
        if stale:  # (removed on another process while this one was writing)
            await self.client.hdel(STATUS, *stale)
