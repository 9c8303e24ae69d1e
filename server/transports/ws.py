"""WebSocket: subscribe / unsubscribe / ping over one socket; ticks pushed as `{"type": "tick"}`.

A `WsConnection` is one client's session: its ops, and a `StreamSubscriber` (`server.stream`) with
a cursor per symbol into the shared rings. It reaches its client through a `WsLink`: on the fast
path, our own protocol on the socket (`server.transports.ws_socket`); otherwise ASGI (`serve`).

A client whose writes stay blocked (it stopped reading) while it falls more than `ws_lag_limit`
ticks behind is closed with 1008; it can reconnect with `after` and resume from history without
loss. Other clients never wait for it: the ring is shared, not copied, and a stalled client's
catch-up runs in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import reprlib
import time
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.fast_path import Outlet
from server.hub import Subscription
from server.runtime import Runtime
from server.schema import Ping, Subscribe, Unsubscribe
from server.stream import StreamSubscriber
from server.wire import WS, ws_message

logger = logging.getLogger("pushpull.ws")

__all__ = [
    "PATH",
    "SHUTDOWN_CLOSE_WAIT",
    "SHUTTING_DOWN",
    "SLOW_CONSUMER",
    "WsConnection",
    "WsLink",
    "refuse",
    "serve",
    "sweep",
]

PATH = "/ws"

SLOW_CONSUMER = (1008, "too slow: fell behind; reconnect with 'after' to resume")
"""Close code and reason for a client that fell too far behind while not reading (policy violation)."""
SHUTTING_DOWN = (1012, "server shutting down")
CLOSE_WAIT = 10.0
"""Seconds to wait for a stalled socket to accept our close frame before dropping it."""
SHUTDOWN_CLOSE_WAIT = 0.5
"""The same while the server stops: it waits for every socket to close."""
KEEPALIVE = 20.0
"""Seconds between pings to an idle client, and how long it has to answer one."""

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother = 2, 40, 40
"""How an unknown op is quoted back: a client's 64 KiB of nesting is not echoed whole."""


class WsLink(Protocol):
    """How a session reaches its client."""

    outlet: Outlet | None
    """The socket, for the hub to write ticks to directly; None on the ASGI path."""

    def pushing_back(self) -> bool:
        """Stalled in a write: the client is not reading (the sweeper's test)."""
        ...

    async def send_texts(self, texts: list[str]) -> None:
        """Text messages, in order; returns once they are written or buffered within limits."""
        ...

    def end(self, code: int, reason: str) -> None:
        """Close from the server's side (eviction, shutdown); only the first call counts."""
        ...

    def keepalive(self, now: float) -> None:
        """Called every sweep: ping an idle client, drop one that did not answer the last ping."""
        ...


class WsConnection(StreamSubscriber[str]):
    """One WebSocket client: its ops, its cursors (`StreamSubscriber`) and subscriptions.

    Ticks need no task while the hub can write them; when it cannot, `wake()` starts a catch-up
    writer, which ends once it has caught up.
    """

    __slots__ = ("evicted", "link", "runtime", "subscriptions", "writer")

    def __init__(self, runtime: Runtime, link: WsLink) -> None:
        super().__init__(runtime.hub, WS, runtime.stats.ws)
        self.runtime = runtime
        self.link = link
        self.outlet = link.outlet
        self.subscriptions: dict[str, Subscription] = {}
        self.evicted = False
        self.writer: asyncio.Task[None] | None = None
        """The catch-up writer, while one runs."""

    def opened(self) -> None:
        self.stats.open_connections += 1
        self.stats.direct_connections += self.outlet is not None
        self.runtime.ws_connections.add(self)

    def closed(self) -> None:
        """The socket is gone: leave every topic, stop writing, stop counting."""
        if self not in self.runtime.ws_connections:
            return  # closed already
        self.left = True
        if self.writer is not None:
            self.writer.cancel()
        self.runtime.ws_connections.discard(self)
        for subscription in self.subscriptions.values():
            subscription.cancel()
        self.subscriptions.clear()
        self.stats.open_connections -= 1

    def wake(self) -> None:
        """Start the catch-up writer unless it runs; on shutdown, end the connection instead."""
        if self.hub.closing:
            self.link.end(*SHUTTING_DOWN)
        elif self.writer is None and not self.left:
            self.writer = asyncio.ensure_future(self.write_ticks())

    async def write_ticks(self) -> None:
        """The catch-up writer: the backlog, then writing goes back to the hub and this ends."""
        try:
            await self.catch_up(self.link.send_texts)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left; its socket's end does the rest
        finally:
            self.writer = None

    def evict(self) -> None:
        """Called by the sweeper when this client is stalled and too far behind."""
        if not self.evicted:
            self.evicted = True
            self.stats.evicted += 1
            self.link.end(*SLOW_CONSUMER)

    def lag(self) -> int:
        topics = self.hub.topics
        return max((topics[s].head_seq - seq for s, seq in self.cursors.items()), default=0)

    def receive(self, text: str | None) -> list[str]:
        """An op from the client; the messages to answer it with. A bad op gets an `error`
        message and changes nothing."""
        if text is None:
            error: str | None = "send ops as JSON text frames"
            replies: list[str] = []
        else:
            replies, error = self.handle(text)
        if error is not None:
            self.stats.rejected += 1
            replies = [ws_message("error", detail=error)]
        self.stats.bytes_sent += sum(len(reply) for reply in replies)
        return replies

    def handle(self, text: str) -> tuple[list[str], str | None]:
        try:
            op = json.loads(text)
        except ValueError as exc:
            return [], f"not JSON: {exc}"
        except RecursionError:
            return [], "not JSON we take: nested too deeply"
        if not isinstance(op, dict):
            return [], "an op is a JSON object with an 'op' field"
        kind = op.get("op")
        try:
            if kind == "subscribe":
                return self.subscribe(Subscribe.model_validate(op))
            if kind == "unsubscribe":
                return self.unsubscribe(Unsubscribe.model_validate(op)), None
            if kind == "ping":
                Ping.model_validate(op)
                return [ws_message("pong", ts=time.time())], None
        except ValidationError as exc:
            return [], f"bad {kind!r} op: " + "; ".join(_describe(e) for e in exc.errors())
        return [], f"unknown op {_short.repr(kind)}; expected subscribe, unsubscribe or ping"

    def subscribe(self, op: Subscribe) -> tuple[list[str], str | None]:
        """Follow the symbols from `after` (if history still covers it) or from the latest tick,
        which the catch-up writer sends right after the `subscribed` answer."""
        hub = self.hub
        unknown = [s for s in op.symbols if s not in hub.topics]
        unknown += [s for s in op.after if s not in op.symbols]
        if unknown:
            return [], f"unknown symbol(s) or 'after' for a symbol not subscribed: {', '.join(unknown)}"
        replies = [ws_message("subscribed", symbols=op.symbols, epoch=hub.epoch), *self.follow_new_epoch()]
        same_epoch = op.epoch is None or op.epoch == hub.epoch
        for symbol in op.symbols:
            topic = hub.topics[symbol]
            after = op.after.get(symbol)
            if after is None and symbol in self.subscriptions:
                continue  # already followed, no cursor given: nothing to send again
            if after is not None and same_epoch and topic.after(after) is not None:
                self.cursors[symbol] = after
            else:
                if after is not None:
                    reason = "stale" if same_epoch else "epoch"
                    replies.append(ws_message("gap", symbol=symbol, epoch=hub.epoch, reason=reason))
                self.cursors[symbol] = max(0, topic.head_seq - 1)
            if symbol not in self.subscriptions:
                self.subscriptions[symbol] = hub.subscribe(symbol, self)
        self.stall()  # the writer starts once this op's answers are on their way
        return replies, None

    def unsubscribe(self, op: Unsubscribe) -> list[str]:
        for symbol in op.symbols:
            self.cursors.pop(symbol, None)
            subscription = self.subscriptions.pop(symbol, None)
            if subscription is not None:
                subscription.cancel()
        return [ws_message("unsubscribed", symbols=op.symbols)]


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "op"
    return f"{where}: {error.get('msg', 'invalid')}"


class AsgiLink:
    """A session's client through ASGI: portable to any server, one task per connection."""

    __slots__ = ("_send", "ending", "outlet", "sending", "task")

    def __init__(self, send: Send, task: asyncio.Task[Any]) -> None:
        self._send = send
        self.task = task
        self.outlet: Outlet | None = None
        self.sending = False
        """True only while a write is suspended: the socket's buffer is full."""
        self.ending: tuple[int, str] | None = None

    def pushing_back(self) -> bool:
        return self.sending

    async def send_texts(self, texts: list[str]) -> None:
        for text in texts:
            self.sending = True
            try:
                await self._send({"type": "websocket.send", "text": text})
            finally:
                self.sending = False

    def end(self, code: int, reason: str) -> None:
        if self.ending is None:
            self.ending = (code, reason)
            self.task.cancel()  # `serve` closes with the code once its reader has stopped

    def keepalive(self, now: float) -> None:
        """The ASGI server pings (uvicorn does, every 20 s)."""


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """Answer a WebSocket handshake with an HTTP error and a JSON body, as the API's errors are."""
    await WebSocket(scope, receive, send).send_denial_response(JSONResponse({"detail": detail}, status))


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`WS /ws` by plain ASGI: accept (or refuse past `--max-connections`), then answer ops until
    either side ends it."""
    websocket = WebSocket(scope, receive, send)
    stats = runtime.stats.ws
    stats.requests += 1
    await websocket.accept()
    task = asyncio.current_task()
    assert task is not None
    link = AsgiLink(send, task)
    connection = WsConnection(runtime, link)
    connection.opened()
    client_left = False
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                client_left = True
                break
            await link.send_texts(connection.receive(message.get("text")))
    except asyncio.CancelledError:
        if link.ending is None or task.cancelling() > 1:
            raise
        task.uncancel()
    except (WebSocketDisconnect, RuntimeError, OSError):
        client_left = True
    finally:
        connection.closed()
    if link.ending is not None and not client_left:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError, WebSocketDisconnect):  # it may leave first
            await asyncio.wait_for(websocket.close(*link.ending), CLOSE_WAIT)


async def sweep(runtime: Runtime, period: float = 0.5) -> None:
    """A lifespan task: evict WebSocket clients that are stalled in a write and too far behind,
    and keep idle ones alive (or find them dead)."""
    limit = runtime.settings.ws_lag_limit
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        now = loop.time()
        for connection in list(runtime.ws_connections):
            try:
                if connection.link.pushing_back() and connection.lag() > limit:
                    connection.evict()
                else:
                    connection.link.keepalive(now)
            except Exception:  # one broken connection must not stop eviction and pings for all
                logger.exception("the WebSocket sweeper failed on one connection")
