"""`create_app(settings)`: the FastAPI app; its lifespan runs the broker, the feed and the timers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from server import __version__
from server.broker import make_broker
from server.docs_ui import add_docs
from server.feed import PriceFeed
from server.hub import Hub
from server.runtime import Runtime
from server.settings import Settings
from server.transports import longpoll, meta, poll, publish, sse, webhooks, ws

__all__ = ["create_app"]


async def _heartbeat(hub: Hub, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        hub.beat()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(
        settings=settings, broker=make_broker(settings.broker), hub=Hub(settings.symbols, settings.history)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker, hub = runtime.broker, runtime.hub
        await broker.start(hub.deliver)
        hub.reset_epoch(broker.epoch)
        feed = PriceFeed(settings.symbols, settings.tick_rate, settings.seed)
        for symbol in settings.symbols:
            for tick in await broker.history(symbol, settings.history):
                hub.deliver(tick)
        await runtime.publish([item for item in feed.opening() if hub.topics[item[0]].latest is None])
        tasks = [
            asyncio.create_task(feed.run(runtime.publish), name="feed"),
            asyncio.create_task(_heartbeat(hub, settings.heartbeat), name="heartbeat"),
            asyncio.create_task(ws.sweep_stalled(runtime), name="ws-sweeper"),
        ]
        try:
            yield
        finally:
            hub.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.webhooks.close()
            await broker.stop()

    app = FastAPI(
        title="pushpull",
        version=__version__,
        summary="Live NSE-style ticks by poll, long poll, SSE and WebSocket: push vs pull, measured.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN; add_docs serves them from a local package
        redoc_url=None,
    )
    app.state.runtime = runtime
    if settings.cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "Last-Event-ID"],
            expose_headers=["ETag"],
        )
    for module in (meta, poll, longpoll, sse, ws, publish, webhooks):
        app.include_router(module.router)
    add_docs(app)
    return app
