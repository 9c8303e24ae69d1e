"""Server-Sent Events: one long response per client, each tick an event with `id: <epoch>:<seq>`.

The response is a raw ASGI loop rather than a StreamingResponse: no queue, no extra task per
tick, just the subscriber's cursor into the symbol's ring and the bytes encoded once per tick.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.hub import Entry, Listener, Topic
from server.outlets import Outlet, chunk, http_outlet
from server.raw_send import raw_send
from server.runtime import Runtime, get_runtime
from server.schema import encode_json
from server.stats import TransportStats

__all__ = ["router"]

router = APIRouter(tags=["sse"])

HEARTBEAT = b": keep-alive\n\n"
HEARTBEAT_CHUNK = chunk(HEARTBEAT)


def gap_event(symbol: str, epoch: str, reason: str) -> bytes:
    data = encode_json({"symbol": symbol, "epoch": epoch, "reason": reason})
    return b"event: gap\ndata: %s\n\n" % data


class SseListener(Listener):
    """One SSE client. In step with the ring, its outlet gets each tick's bytes from the hub
    directly; otherwise (socket pushing back, a gap, no outlet) its task catches up from the ring."""

    __slots__ = ("beat_due", "cursor", "disconnected", "outlet", "stalled", "stats")

    def __init__(self, cursor: int, stats: TransportStats) -> None:
        super().__init__()
        self.cursor = cursor
        self.stats = stats
        self.outlet: Outlet | None = None
        self.stalled = True
        """The task, not the hub, writes next: set until it has caught up."""
        self.beat_due = False
        self.disconnected = False

    def on_entry(self, entry: Entry) -> None:
        outlet = self.outlet
        if outlet is not None and not self.stalled and entry.seq == self.cursor + 1 and outlet.ready():
            outlet.write(entry.sse_chunk)
            self.cursor = entry.seq
            self.stats.messages_sent += 1
            self.stats.bytes_sent += len(entry.sse)
        else:
            self.stalled = True
            self.wake()

    def on_beat(self) -> None:
        outlet = self.outlet
        if outlet is not None and not self.stalled and outlet.ready():
            outlet.write(HEARTBEAT_CHUNK)
            self.stats.bytes_sent += len(HEARTBEAT)
        else:
            self.beat_due = True
            self.wake()

    async def watch(self, receive: Receive) -> None:
        """Notice the client leaving even while no tick flows (send() after it would be silent)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        self.wake()


def catch_up(topic: Topic, epoch: str, cursor: int) -> tuple[bytes, int, int]:
    """What a stream at `cursor` must send now: (bytes, new cursor, ticks among them).

    A cursor the ring no longer covers (a stalled reader, a burst, a new epoch) gets a gap
    event and the latest tick: the stream conflates rather than closes.
    """
    entries, gap = topic.resume(cursor)
    if not entries:
        return b"", cursor, 0
    body = b"".join([e.sse for e in entries])
    if gap:
        body = gap_event(topic.symbol, epoch, "stale") + body
    return body, entries[-1].seq, len(entries)


class EventStream(Response):
    """The SSE response: a preamble (retry, maybe a gap, the resumed ticks), then live ticks."""

    def __init__(self, runtime: Runtime, topic: Topic, preamble: bytes, cursor: int, sent: int) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        self.runtime = runtime
        self.topic = topic
        self.preamble = preamble
        self.cursor = cursor
        self.sent = sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.runtime.hub
        stats = self.runtime.stats.sse
        topic = self.topic
        listener = SseListener(self.cursor, stats)
        watcher = asyncio.ensure_future(listener.watch(receive))
        stats.open_connections += 1
        stats.messages_sent += self.sent
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            send = raw_send(scope, send)
            listener.outlet = http_outlet(send)
            stats.direct_connections += listener.outlet is not None
            topic.listeners.add(listener)
            hub.heartbeats.add(listener)
            body = self.preamble
            while not (listener.disconnected or hub.closing):
                if body:
                    listener.stalled = True  # the task holds the pen until it has caught up
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    stats.bytes_sent += len(body)
                body, listener.cursor, count = catch_up(topic, hub.epoch, listener.cursor)
                stats.messages_sent += count
                if body:
                    continue
                if listener.beat_due:
                    listener.beat_due = False
                    body = HEARTBEAT
                    continue
                listener.stalled = False
                await listener.sleep()
        finally:
            watcher.cancel()
            topic.listeners.discard(listener)
            hub.heartbeats.discard(listener)
            stats.open_connections -= 1
            if not listener.disconnected:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def parse_event_id(value: str) -> tuple[str, int] | None:
    epoch, _, seq = value.strip().rpartition(":")
    if not epoch or not seq.isdigit():
        return None
    return epoch, int(seq)


def preamble_for(runtime: Runtime, topic: Topic, last_event_id: str | None) -> tuple[bytes, int, int]:
    """Where a stream starts: (bytes to send first, cursor after them, ticks among them)."""
    retry = b"retry: %d\n\n" % runtime.settings.sse_retry_ms
    latest: Entry = runtime.latest_or_503(topic.symbol)
    if last_event_id is None:
        return retry + latest.sse, latest.seq, 1
    parsed = parse_event_id(last_event_id)
    epoch = runtime.hub.epoch
    if parsed is None:
        reason = "unknown"
    elif parsed[0] != epoch:
        reason = "epoch"
    else:
        entries = topic.after(parsed[1])
        if entries is not None:
            return retry + b"".join([e.sse for e in entries]), parsed[1] + len(entries), len(entries)
        reason = "stale"
    return retry + gap_event(topic.symbol, epoch, reason) + latest.sse, latest.seq, 1


@router.get(
    "/api/stream/{symbol}",
    status_code=200,
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`event: tick` events, forever."},
        404: {},
        503: {"description": "Too many open connections."},
    },
)
async def stream(
    symbol: str,
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=128)] = None,
    last_event_id: Annotated[
        str | None, Query(max_length=128, description="Resume point for a browser's first connect.")
    ] = None,
) -> Response:
    """Ticks of one symbol as Server-Sent Events, resumable with `Last-Event-ID: <epoch>:<seq>`.

    An unknown or stale id starts from the latest tick, after an `event: gap`.
    """
    stats = runtime.stats.sse
    stats.requests += 1
    topic = runtime.topic_or_404(symbol)
    if runtime.at_capacity():
        stats.rejected += 1
        return JSONResponse({"detail": "too many open connections"}, 503)
    resume_from = last_event_id_header if last_event_id_header is not None else last_event_id
    preamble, cursor, sent = preamble_for(runtime, topic, resume_from)
    return EventStream(runtime, topic, preamble, cursor, sent)
