"""The outermost ASGI app: the hot endpoints go straight to their handlers, the rest to FastAPI.

Poll, long poll, SSE and WebSocket are where the load is (many clients, many requests, long-lived
connections), and publishing is on every tick's way to them, so they skip FastAPI's routing,
dependency solving and middleware: less memory per open connection, less CPU per request, and the
stream handlers get uvicorn's own `send`, which their outlets write through (see
`server.outlets`). Everything else (webhooks, stats, OpenAPI, CORS preflights) goes to FastAPI,
which also keeps documenting the hot routes and serves them itself, by the same handlers, if the
app runs without this door.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from server.rawhttp import cors_headers, error_body, respond
from server.runtime import Runtime
from server.transports import longpoll, poll, publish, sse, ws

__all__ = ["FrontDoor"]

Handler = Callable[[Runtime, Scope, Receive, Send], Awaitable[None]]

HTTP_ROUTES: tuple[tuple[str, Handler], ...] = (
    (sse.PREFIX, sse.serve),
    (longpoll.PREFIX, longpoll.serve),
    (poll.PREFIX, poll.serve),
)


class FrontDoor:
    """Dispatches `GET /api/price|longpoll|stream/{symbol}`, `POST /api/publish` and `/ws` itself;
    the rest to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.runtime: Runtime = app.state.runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            handler = self.route(scope["method"], scope["path"])
            if handler is not None:
                try:
                    await handler(self.runtime, scope, receive, send)
                except HTTPException as exc:  # raised before the response started
                    headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
                    headers += cors_headers(self.runtime.settings.cors, scope)  # a page may read its errors too
                    await respond(send, exc.status_code, error_body(exc.detail), headers)
                return
        elif kind == "websocket" and scope["path"] == ws.PATH:
            await ws.serve(self.runtime, scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def route(method: str, path: str) -> Handler | None:
        if method == "GET":
            for prefix, handler in HTTP_ROUTES:
                if path.startswith(prefix):
                    return handler
        elif method == "POST" and path == publish.PATH:
            return publish.serve
        return None
