"""Reading a server's answers under the bounds of `tui.modes.limits`, counting the wire as it goes.

Bodies are read piece by piece against a cap (never `response.content`, which reads all there
is), the whole request under one deadline, and an SSE stream through a guard that cuts a line
or an event that never ends before httpx-sse buffers it. Compressed answers are refused (we ask
for none): a decoder turns one small piece into megabytes, so no byte cap would bound it.

Example:

    response, body = await fetch(http, request, deadline=10.0, max_bytes=2**20, stats=stats)
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

import httpx

from tui.modes.limits import LimitExceeded
from tui.modes.stats import ModeStats
from tui.modes.wire import request_bytes, response_head_bytes

__all__ = ["IDENTITY", "EventGuard", "fetch", "refuse_encoded"]

IDENTITY = {"Accept-Encoding": "identity"}
"""Headers asking for an uncompressed answer (see the module's docstring)."""

LINE_END = re.compile(rb"\r\n|\r|\n")
"""SSE's line terminators."""


def refuse_encoded(response: httpx.Response) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise LimitExceeded(f"a {encoding}-encoded answer (asked for none)")


async def fetch(
    http: httpx.AsyncClient, request: httpx.Request, *, deadline: float, max_bytes: int, stats: ModeStats
) -> tuple[httpx.Response, bytes]:
    """Send `request` and read its answer within `deadline` seconds and `max_bytes` of body.

    The bytes counted on the wire are those that arrived, the refused ones too: they cost as much.
    Raises `TimeoutError` or `LimitExceeded`; the connection is then closed, not reused.
    """
    request.headers.update(IDENTITY)
    stats.wire_bytes_sent += request_bytes(request)
    async with asyncio.timeout(deadline):
        response = await http.send(request, stream=True)
        try:
            stats.wire_bytes_received += response_head_bytes(response)
            refuse_encoded(response)
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise LimitExceeded(f"an answer of {int(declared):,} bytes (cap {max_bytes:,})")
            body = bytearray()
            async for piece in response.aiter_raw():
                stats.wire_bytes_received += len(piece)
                if len(body) + len(piece) > max_bytes:
                    raise LimitExceeded(f"an answer over {max_bytes:,} bytes")
                body += piece
        finally:
            await response.aclose()
    return response, bytes(body)


class EventGuard(httpx.AsyncByteStream):
    """An SSE body stream that fails, before the bytes reach the line decoder, when a line or an
    event (its lines up to the blank one) outgrows its cap, or no event ends for `silence` seconds.

    Example:

        response.stream = EventGuard(response.stream, line_bytes=65536, event_bytes=262144, silence=45.0)
    """

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        *,
        line_bytes: int,
        event_bytes: int,
        silence: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.line_bytes = line_bytes
        self.event_bytes = event_bytes
        self.silence = silence
        self.clock = clock
        self._line = 0
        """Bytes of the line being read."""
        self._event = 0
        """Bytes of the event's complete lines."""
        self._after_cr = False
        """The last piece ended in CR: a LF opening the next one belongs to it."""
        self._event_ended = clock()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.inner:
            self.check(piece)
            yield piece

    def check(self, piece: bytes) -> None:
        """Follow lines and events through `piece`; raise `LimitExceeded` past a bound."""
        start = 1 if self._after_cr and piece[:1] == b"\n" else 0
        self._after_cr = piece.endswith(b"\r")
        for end in LINE_END.finditer(piece, start):
            self._line += end.start() - start
            self._check_line()
            if self._line == 0:  # a blank line: the event is complete
                self._event = 0
                self._event_ended = self.clock()
            else:
                self._event += self._line
            self._line = 0
            start = end.end()
        self._line += len(piece) - start
        self._check_line()
        if self.clock() - self._event_ended > self.silence:
            raise LimitExceeded(f"no complete event in {self.silence:g} s")

    def _check_line(self) -> None:
        if self._line > self.line_bytes:
            raise LimitExceeded(f"an event line over {self.line_bytes:,} bytes")
        if self._event + self._line > self.event_bytes:
            raise LimitExceeded(f"an event over {self.event_bytes:,} bytes")

    async def aclose(self) -> None:
        await self.inner.aclose()
