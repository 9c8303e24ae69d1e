"""Every bound a mode client puts on what a server sends it, in one place.

A broken or hostile server may make a client fail, never grow it without limit or hang it:
each body, SSE line and event, and WebSocket message is read under a size cap, and each request
under a total deadline (httpx's timeouts are per read: an answer trickled a byte at a time
never trips them). Going past a bound is an error like any network error: the pane shows it,
the connection is dropped and the client retries with its backoff.

The defaults are generous for a real pushpull server; tests pass small `Limits` to stay quick.

Example:

    client = make_client("poll", url, "TCS", limits=Limits(body_bytes=4096, request_deadline=1.0))
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LONGPOLL_MARGIN",
    "MAX_BODY_BYTES",
    "MAX_SSE_EVENT_BYTES",
    "MAX_SSE_LINE_BYTES",
    "MAX_WS_MESSAGE_BYTES",
    "REQUEST_DEADLINE",
    "STREAM_SILENCE",
    "LimitExceeded",
    "Limits",
]

KIB = 1024
MIB = 1024 * KIB

MAX_BODY_BYTES = 8 * MIB
"""A poll, long-poll or `/api/time` answer. A tick is about 150 bytes; a long poll brings at most
the server's history (1,000 ticks by default), so this leaves room for a history of ~50,000."""
MAX_SSE_LINE_BYTES = 64 * KIB
"""One SSE line: a tick's `data:` line is about 150 bytes (the server refuses messages over 64 KiB)."""
MAX_SSE_EVENT_BYTES = 256 * KIB
"""One SSE event, every line up to the blank one that ends it (this server sends one line each)."""
MAX_WS_MESSAGE_BYTES = 1 * MIB
"""One WebSocket message (websockets' `max_size`): a tick frame is about 100 bytes."""
REQUEST_DEADLINE = 10.0
"""Seconds for a whole request: a poll, an `/api/time` sample, a stream's or socket's opening."""
LONGPOLL_MARGIN = 10.0
"""Seconds past its hold before a long poll's answer is overdue."""
STREAM_SILENCE = 45.0
"""Seconds an SSE stream may go without completing an event: the server sends a heartbeat every
15 s, so three missed mean it is dead, or trickling bytes that never make an event."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one client; the module's constants by default."""

    body_bytes: int = MAX_BODY_BYTES
    sse_line_bytes: int = MAX_SSE_LINE_BYTES
    sse_event_bytes: int = MAX_SSE_EVENT_BYTES
    ws_message_bytes: int = MAX_WS_MESSAGE_BYTES
    request_deadline: float = REQUEST_DEADLINE
    longpoll_margin: float = LONGPOLL_MARGIN
    stream_silence: float = STREAM_SILENCE


class LimitExceeded(Exception):
    """The server sent more than a bound allows (or in a form that cannot be bounded)."""
