"""The outermost ASGI app, what `create_app()` returns: hot endpoints straight to their handlers.

Poll, long poll, SSE and WebSocket are where the load is (many clients, many requests, long-lived
connections), and publishing is on every tick's way to them, so they skip FastAPI's routing,
dependency solving and middleware: an open stream that went through FastAPI kept its whole call
stack alive, a large share of its memory, and a poll paid for it in CPU on every request (the
figures are in docs/benchmarks.md). Each hot
endpoint is declared once (`server.hot_routes`): this door dispatches by that declaration, and
FastAPI's OpenAPI document includes it. Everything else (webhooks, stats, docs) goes to FastAPI.
CORS is one policy for both (`server.cors`).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from server.hot_routes import HotRoute
from server.rawhttp import error_answer, respond
from server.runtime import Runtime
from server.transports import longpoll, poll, publish, sse, ws

__all__ = ["HOT_ROUTES", "FrontDoor"]

HOT_ROUTES: tuple[HotRoute, ...] = (sse.ROUTE, longpoll.ROUTE, poll.ROUTE, publish.ROUTE)


class FrontDoor:
    """Serves the hot routes and `WS /ws` itself, browsers' CORS preflights too; the rest is `api`'s."""

    def __init__(self, api: FastAPI, runtime: Runtime) -> None:
        self.api = api
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            runtime = self.runtime
            method, path = scope["method"], scope["path"]
            for route in HOT_ROUTES:
                if route.matches(method, path):
                    try:
                        await route.handler(runtime, scope, receive, send)
                    except HTTPException as exc:  # raised before the response started; pages read errors too
                        status, headers, body = error_answer(exc, runtime.cors.headers(scope))
                        await respond(runtime.fast_path, send, status, body, headers)
                    return
            if method == "OPTIONS":
                preflight = runtime.cors.preflight(scope)
                if preflight is not None:
                    status, headers, body = preflight
                    await respond(runtime.fast_path, send, status, body, headers, content_type=None)
                    return
            await self.api(scope, receive, runtime.cors.wrap(scope, send))
            return
        if kind == "websocket":
            if scope["path"] == ws.PATH:
                await ws.serve(self.runtime, scope, receive, send)
            else:
                await ws.refuse(scope, receive, send, 404, "Not Found")
            return
        await self.api(scope, receive, send)  # the lifespan
