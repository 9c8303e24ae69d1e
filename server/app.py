"""`create_app(settings)`: the ASGI app; its lifespan runs the broker, the feed and the timers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from server import __version__
from server.broker import make_broker
from server.docs_ui import add_docs
from server.feed import PriceFeed
from server.front_door import HOT_ROUTES, FrontDoor
from server.hot_routes import document
from server.hub import Hub
from server.runtime import Runtime
from server.settings import Settings
from server.transports import meta, webhooks, ws

__all__ = ["create_app"]

logger = logging.getLogger("pushpull.app")

SHUTDOWN_WAIT = 5.0
"""Seconds the background tasks get to stop at shutdown."""


async def _heartbeat(hub: Hub, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        hub.beat()


def create_app(settings: Settings | None = None) -> FrontDoor:
    """The app any ASGI server runs: the front door (hot routes) before FastAPI (the rest).

    Under uvicorn with httptools, poll, long poll and SSE take the fast path; WebSockets take it
    only with our own protocol, which `pushpull-server` gives uvicorn (`server.__main__`)."""
    settings = settings or Settings()
    runtime = Runtime(settings=settings, broker=make_broker(settings), hub=Hub(settings.symbols, settings.history))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker, hub = runtime.broker, runtime.hub
        await broker.start(hub.deliver)
        if hub.epoch != broker.epoch:
            hub.reset_epoch(broker.epoch)
        feed = PriceFeed(settings.symbols, settings.tick_rate, settings.seed)
        opened = await broker.open([item for item in feed.opening() if hub.topics[item[0]].latest is None])
        runtime.stats.ticks_published += len(opened)

        async def run_feed() -> None:
            await broker.ready()  # walk on from the last published prices, not the opening ones
            feed.continue_from({s: t.latest.tick.price for s, t in hub.topics.items() if t.latest is not None})
            await feed.run(functools.partial(runtime.publish, lease="feed"))

        tasks = [
            asyncio.create_task(_heartbeat(hub, settings.heartbeat), name="heartbeat"),
            asyncio.create_task(ws.sweep(runtime), name="ws-sweeper"),
            asyncio.create_task(broker.exclusive("webhooks", runtime.webhook_registry.send), name="webhooks"),
        ]
        if settings.tick_rate > 0:
            tasks.append(asyncio.create_task(broker.exclusive("feed", run_feed), name="feed"))
        try:
            yield
        finally:
            hub.close()
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT)
            for task in stuck:  # (a cancellation swallowed on the way: do not hang the exit on it)
                logger.warning("%s did not stop within %g s; exiting anyway", task.get_name(), SHUTDOWN_WAIT)
            await runtime.webhooks.close()
            await broker.stop()

    api = FastAPI(
        title="pushpull",
        version=__version__,
        summary="Live NSE-style ticks by poll, long poll, SSE and WebSocket: push vs pull, measured.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN; add_docs serves them from a local package
        redoc_url=None,
    )
    api.state.runtime = runtime
    for module in (meta, webhooks):
        api.include_router(module.router)
    generated = api.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document for its own routes, plus the hot routes' declarations."""
        if api.openapi_schema is None:
            api.openapi_schema = document(generated(), HOT_ROUTES)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    add_docs(api)
    return FrontDoor(api, runtime)
