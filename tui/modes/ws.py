"""WebSocket: one socket; we subscribe once and the server pushes every tick as a frame."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK, WebSocketException

from server.schema import Tick
from tui.modes.base import ModeClient, ModeError
from tui.modes.limits import Limits
from tui.modes.wire import head_bytes, ws_frame_bytes

__all__ = ["WsClient", "open_socket", "parse_frame", "ws_url"]


def ws_url(server_url: str) -> str:
    """The `/ws` endpoint of an http(s) server URL."""
    if server_url.startswith("https://"):
        return "wss://" + server_url.removeprefix("https://") + "/ws"
    return "ws://" + server_url.removeprefix("http://") + "/ws"


def open_socket(server_url: str, limits: Limits) -> connect:
    """The `/ws` socket as our clients open it: no compression (ticks are small and per-socket
    deflate state costs more than it saves); a message over `limits.ws_message_bytes` closes it
    with 1009 before it is read; the handshake bounded by the request deadline (a trickled one too)."""
    return connect(
        ws_url(server_url),
        compression=None,
        max_size=limits.ws_message_bytes,
        open_timeout=limits.request_deadline,
        close_timeout=2.0,
    )


def parse_frame(message: bytes) -> tuple[object, dict[str, Any]]:
    """A server frame's `type` and the rest of it; `ModeError` for anything but a JSON object."""
    try:
        frame = json.loads(message)
    except RecursionError:  # deeply nested: not ours, and not worth a traceback
        raise ModeError(f"unexpected frame: {message[:80]!r}") from None
    if not isinstance(frame, dict):
        raise ModeError(f"unexpected frame: {message[:80]!r}")
    return frame.pop("type", None), frame


class WsClient(ModeClient):
    """`WS /ws` with `{"op": "subscribe"}`, resumed with `after` and `epoch` after a drop.

    Example:

        client = WsClient("http://127.0.0.1:8000", "RELIANCE")
        await client.run()
    """

    mode: ClassVar[str] = "ws"
    title: ClassVar[str] = "WebSocket"
    transport_errors: ClassVar[tuple[type[BaseException], ...]] = (WebSocketException,)

    def explain(self) -> str:
        return "one open socket; the server pushes"

    def subscribe_op(self) -> dict[str, Any]:
        op: dict[str, Any] = {"op": "subscribe", "symbols": [self.symbol]}
        if self.cursor is not None:
            op["after"] = {self.symbol: self.cursor}
            if self.epoch is not None:
                op["epoch"] = self.epoch
        return op

    async def receive(self) -> None:
        async with open_socket(self.server_url, self.limits) as ws:
            stats = self.stats
            stats.requests += 1
            stats.open_connections = 1
            request, response = ws.request, ws.response
            if request is not None and response is not None:  # the upgrade, both ways
                stats.wire_bytes_sent += head_bytes(f"GET {request.path} HTTP/1.1", request.headers.raw_items())
                status_line = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
                stats.wire_bytes_received += head_bytes(status_line, response.headers.raw_items())
            try:
                subscribe = json.dumps(self.subscribe_op()).encode()
                await ws.send(subscribe, text=True)
                stats.wire_bytes_sent += ws_frame_bytes(len(subscribe), from_client=True)
                while True:
                    try:
                        message = await ws.recv(decode=False)  # bytes: json.loads needs no str copy
                    except ConnectionClosedOK:
                        return
                    stats.wire_bytes_received += ws_frame_bytes(len(message), from_client=False)
                    self.take(message)
            finally:
                self.stats.open_connections = 0

    def take(self, message: bytes) -> None:
        """Handle one frame from the server."""
        kind, frame = parse_frame(message)
        if kind == "tick":
            self.accept(Tick.model_validate(frame), len(message))
        elif kind == "gap":
            self.stats.bytes_received += len(message)
            self.saw_gap()
        elif kind == "subscribed":
            self.went_live()
        elif kind == "error":
            raise ModeError(str(frame.get("detail", "the server refused the subscription")))
        # "pong" and "unsubscribed" need nothing
