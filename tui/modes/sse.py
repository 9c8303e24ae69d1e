"""Server-Sent Events: one long response; the server writes each tick as an event."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

import httpx
from httpx_sse import EventSource, SSEError, aconnect_sse

from server.schema import Tick
from tui.modes.base import ModeClient, ModeError
from tui.modes.bounded import IDENTITY, EventGuard, refuse_encoded
from tui.modes.wire import CountingStream, request_bytes, response_head_bytes

__all__ = ["SseClient"]


class SseClient(ModeClient):
    """`GET /api/stream/{symbol}`, resumed with `Last-Event-ID: <epoch>:<seq>` after a drop.

    The server's `retry:` hint is not used: reconnects follow this client's `Backoff`, as in every
    other mode, so the modes compare fairly.

    Example:

        client = SseClient("http://127.0.0.1:8000", "HDFCBANK")
        await client.run()
    """

    mode: ClassVar[str] = "sse"
    title: ClassVar[str] = "Server-Sent Events"
    transport_errors: ClassVar[tuple[type[BaseException], ...]] = (SSEError,)

    def explain(self) -> str:
        return "one open stream; the server pushes"

    def _received_on_wire(self, size: int) -> None:
        self.stats.wire_bytes_received += size

    async def receive(self) -> None:
        url = f"{self.server_url}/api/stream/{self.symbol}"
        headers = dict(IDENTITY)
        if self.cursor is not None and self.epoch is not None:
            headers["Last-Event-ID"] = f"{self.epoch}:{self.cursor}"
        limits = self.limits
        timeout = httpx.Timeout(limits.request_deadline, read=limits.stream_silence)
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(limits.request_deadline):  # the head, however trickled
                source = await stack.enter_async_context(
                    aconnect_sse(self.http, "GET", url, headers=headers, timeout=timeout)
                )
            await self._follow(url, source)

    async def _follow(self, url: str, source: EventSource) -> None:
        """Take the stream's events; it goes live with the first complete one."""
        response = source.response
        self.stats.requests += 1
        self.stats.wire_bytes_sent += request_bytes(response.request)
        self.stats.wire_bytes_received += response_head_bytes(response)
        if isinstance(response.stream, httpx.AsyncByteStream):
            counted = CountingStream(response.stream, self._received_on_wire, chunked=True)
            limits = self.limits
            response.stream = EventGuard(
                counted,
                line_bytes=limits.sse_line_bytes,
                event_bytes=limits.sse_event_bytes,
                silence=limits.stream_silence,
            )
        if response.status_code == 404:
            raise ModeError(f"unknown symbol {self.symbol}")
        response.raise_for_status()
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise ModeError(f"expected an event stream from {url}, got {content_type or 'no content type'}")
        refuse_encoded(response)
        self.stats.open_connections = 1
        try:
            async for event in source.aiter_sse():
                self.went_live()
                if event.event == "tick":
                    self.accept(Tick.model_validate_json(event.data), len(event.data))
                elif event.event == "gap":
                    self.stats.bytes_received += len(event.data)
                    self.saw_gap()
                # anything else is the `retry:` block: nothing to take (comments are not events)
        finally:
            self.stats.open_connections = 0
