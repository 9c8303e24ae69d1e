"""WebSocket: subscribe / unsubscribe / ping over one socket; ticks pushed as `{"type": "tick"}`.

Each connection is a `StreamSubscriber` (`server.stream`): a cursor per symbol into the shared
rings. A client whose writes stay blocked (it stopped reading) while it falls more than
`ws_lag_limit` ticks behind is closed with 1008; it can reconnect with `after` and resume from
history without loss. Other clients never wait for it: the ring is shared, not copied, and a
stalled client's catch-up runs in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.hub import Subscription
from server.runtime import Runtime
from server.schema import Ping, Subscribe, Unsubscribe
from server.stream import StreamSubscriber
from server.wire import WS, ws_message

__all__ = ["PATH", "SLOW_CONSUMER", "WsConnection", "serve", "sweep_stalled"]

PATH = "/ws"

SLOW_CONSUMER = 1008
"""Close code for a client that fell too far behind while not reading (policy violation)."""
CLOSE_WAIT = 10.0
"""Seconds to wait for a stalled socket to accept our close frame before dropping it."""


class WsConnection(StreamSubscriber[str]):
    """One WebSocket client: its cursors (`StreamSubscriber`), and one task that reads its ops.

    Ticks need no task of their own while the hub can write them; when it cannot, `wake()` starts
    a catch-up writer, which ends once it has caught up.
    """

    __slots__ = (
        "evicted",
        "raw_send",
        "runtime",
        "sending",
        "shutting_down",
        "subscriptions",
        "task",
        "websocket",
        "writer",
    )

    def __init__(self, websocket: WebSocket, runtime: Runtime, send: Send) -> None:
        super().__init__(runtime.hub, WS, runtime.stats.ws)
        self.websocket = websocket
        self.runtime = runtime
        self.subscriptions: dict[str, Subscription] = {}
        self.evicted = False
        self.shutting_down = False
        self.sending = False
        """True only while a write is suspended: the socket's buffer is full."""
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        """The catch-up writer, while one runs."""
        self.raw_send = send
        """The server's own `send` when the front door called us (then the fast path works)."""
        self.outlet = runtime.fast_path.ws_outlet(send)

    def wake(self) -> None:
        """Start the catch-up writer unless it runs; on shutdown, end the connection instead."""
        if self.hub.closing:
            if not (self.shutting_down or self.evicted) and self.task is not None:
                self.shutting_down = True
                self.task.cancel()
        elif self.writer is None and not self.left:
            self.writer = asyncio.ensure_future(self.write_ticks())

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        hub = self.hub
        stats = self.stats
        stats.open_connections += 1
        stats.direct_connections += self.outlet is not None
        connections: set[WsConnection] = self.runtime.ws_connections
        connections.add(self)
        client_left = False
        try:
            await self.read_ops()
            client_left = True  # it returns only when the client is gone; cancelled otherwise
        except asyncio.CancelledError:
            if not (self.evicted or self.shutting_down) or task.cancelling() > 1:
                raise
            task.uncancel()
        finally:
            self.left = True
            if self.writer is not None:
                self.writer.cancel()
            connections.discard(self)
            for subscription in self.subscriptions.values():
                subscription.cancel()
            stats.open_connections -= 1
        if self.evicted:
            stats.evicted += 1
            await self.close(SLOW_CONSUMER, "too slow: fell behind; reconnect with 'after' to resume")
        elif (self.shutting_down or hub.closing) and not client_left:
            await self.close(1012, "server shutting down")

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError, WebSocketDisconnect):  # it may leave first
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_WAIT)

    def evict(self) -> None:
        """Called by the sweeper when this client is stalled and too far behind."""
        if self.task is not None and not self.evicted:
            self.evicted = True
            self.task.cancel()

    def lag(self) -> int:
        topics = self.hub.topics
        return max((topics[s].head_seq - seq for s, seq in self.cursors.items()), default=0)

    async def send_text(self, text: str) -> None:
        """One message through ASGI; `sending` tells the sweeper while the socket pushes back."""
        self.sending = True
        try:
            await self.raw_send({"type": "websocket.send", "text": text})
        finally:
            self.sending = False

    async def send(self, text: str) -> None:
        """An ack, error or pong (ticks and gaps go through `catch_up`, which counts its own)."""
        await self.send_text(text)
        self.stats.bytes_sent += len(text)

    async def send_payloads(self, payloads: list[str]) -> None:
        for payload in payloads:
            await self.send_text(payload)

    async def write_ticks(self) -> None:
        """The catch-up writer: the backlog, then writing goes back to the hub and this ends."""
        try:
            await self.catch_up(self.send_payloads)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the reader sees the client leave and ends the connection
        finally:
            self.writer = None

    async def read_ops(self) -> None:
        """Answer ops as they come; a bad one gets an `error` frame and changes nothing."""
        stats = self.stats
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    stats.rejected += 1
                    await self.send(ws_message("error", detail="send ops as JSON text frames"))
                    continue
                error = await self.handle(text)
                if error is not None:
                    stats.rejected += 1
                    await self.send(ws_message("error", detail=error))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def handle(self, text: str) -> str | None:
        try:
            op = json.loads(text)
        except ValueError as exc:
            return f"not JSON: {exc}"
        if not isinstance(op, dict):
            return "an op is a JSON object with an 'op' field"
        kind = op.get("op")
        try:
            if kind == "subscribe":
                return await self.subscribe(Subscribe.model_validate(op))
            if kind == "unsubscribe":
                return await self.unsubscribe(Unsubscribe.model_validate(op))
            if kind == "ping":
                Ping.model_validate(op)
                await self.send(ws_message("pong", ts=time.time()))
                return None
        except ValidationError as exc:
            return f"bad {kind!r} op: " + "; ".join(_describe(e) for e in exc.errors())
        return f"unknown op {kind!r}; expected subscribe, unsubscribe or ping"

    async def subscribe(self, op: Subscribe) -> str | None:
        hub = self.hub
        unknown = [s for s in op.symbols if s not in hub.topics]
        unknown += [s for s in op.after if s not in op.symbols]
        if unknown:
            return f"unknown symbol(s) or 'after' for a symbol not subscribed: {', '.join(unknown)}"
        await self.send(ws_message("subscribed", symbols=op.symbols, epoch=hub.epoch))
        same_epoch = op.epoch is None or op.epoch == hub.epoch
        for symbol in op.symbols:
            topic = hub.topics[symbol]
            latest_seq = topic.head_seq
            after = op.after.get(symbol)
            if after is not None and same_epoch and topic.after(after) is not None:
                self.cursors[symbol] = after
            else:
                if after is not None:
                    reason = "stale" if same_epoch else "epoch"
                    await self.send(ws_message("gap", symbol=symbol, epoch=hub.epoch, reason=reason))
                    latest_seq = topic.head_seq
                self.cursors[symbol] = max(0, latest_seq - 1)
            if symbol not in self.subscriptions:
                self.subscriptions[symbol] = hub.subscribe(symbol, self)
        self.stall()
        return None

    async def unsubscribe(self, op: Unsubscribe) -> str | None:
        for symbol in op.symbols:
            self.cursors.pop(symbol, None)
            subscription = self.subscriptions.pop(symbol, None)
            if subscription is not None:
                subscription.cancel()
        await self.send(ws_message("unsubscribed", symbols=op.symbols))
        return None


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "op"
    return f"{where}: {error.get('msg', 'invalid')}"


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`WS /ws`: accept (or refuse past `--max-connections`), then serve ops until either side leaves."""
    websocket = WebSocket(scope, receive, send)
    stats = runtime.stats.ws
    stats.requests += 1
    if runtime.at_capacity():
        stats.rejected += 1
        await websocket.send_denial_response(JSONResponse({"detail": "too many open connections"}, 503))
        return
    await websocket.accept()
    await WsConnection(websocket, runtime, send).run()


async def sweep_stalled(runtime: Runtime, period: float = 0.5) -> None:
    """Evict WebSocket clients that are stalled in a write and too far behind. A lifespan task."""
    limit = runtime.settings.ws_lag_limit
    while True:
        await asyncio.sleep(period)
        for connection in [c for c in runtime.ws_connections if c.sending and c.lag() > limit]:
            connection.evict()
