"""What every route needs at run time: settings, broker, hub, counters, CORS, the fast path."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from server.broker import Broker
from server.broker.redis import RedisBroker
from server.cors import Cors
from server.fast_path import FastPath
from server.gate import Door
from server.hub import Entry, Hub, Topic, UnknownSymbol
from server.schema import Tick
from server.settings import Settings
from server.stats import ServerStats
from server.webhook_registry import LocalRegistry, SharedRegistry, WebhookRegistry
from server.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from server.transports.ws import WsConnection

__all__ = ["Runtime", "get_runtime"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    broker: Broker
    hub: Hub
    stats: ServerStats = field(default_factory=ServerStats)
    fast_path: FastPath = field(init=False)
    door: Door = field(init=False)
    """Every open connection, counted and bounded (`server.gate`)."""
    cors: Cors = field(init=False)
    webhooks: WebhookDispatcher = field(init=False)
    webhook_registry: WebhookRegistry = field(init=False)
    """Where registrations live (this process, or Redis) and who sends (`server.webhook_registry`)."""
    ws_connections: set[WsConnection] = field(default_factory=set)
    """Open WebSocket clients, for the sweeper that evicts stalled ones."""
    started_monotonic: float = field(default_factory=time.monotonic)
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    """Which server process this is (host:pid), for clients that talk to several."""

    def __post_init__(self) -> None:
        self.webhooks = WebhookDispatcher(self.hub, self.settings)
        self.webhook_registry = LocalRegistry(self.webhooks)
        if isinstance(self.broker, RedisBroker):
            self.webhook_registry = SharedRegistry(self.broker, self.webhooks, self.hub, self.instance)
        self.fast_path = FastPath.detect(self.settings.fast_path)
        self.door = Door(self.settings)
        self.cors = Cors(self.settings.cors)

    def topic_or_404(self, symbol: str) -> Topic:
        try:
            return self.hub.topic(symbol)
        except UnknownSymbol:
            raise HTTPException(404, f"unknown symbol {symbol!r}") from None

    def latest_or_503(self, symbol: str) -> Entry:
        """The newest entry of a symbol; every symbol opens with one, so 503 means a reset history."""
        entry = self.topic_or_404(symbol).latest
        if entry is None:
            raise HTTPException(503, f"no tick yet for {symbol!r}; try again shortly")
        return entry

    async def publish(self, items: Sequence[tuple[str, float]], *, lease: str | None = None) -> list[Tick]:
        ticks = await self.broker.publish(items, lease=lease)
        self.stats.ticks_published += len(ticks)
        return ticks


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
