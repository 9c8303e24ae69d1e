"""Server-Sent Events: one long response per client, each tick an event with `id: <epoch>:<seq>`.

The response is a raw ASGI loop rather than a StreamingResponse: no queue, no extra task per
tick, just the subscriber's cursor into the symbol's ring and the bytes encoded once per tick.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.hub import Entry, Topic
from server.outlets import Outlet, chunk, http_outlet
from server.rawhttp import ClientListener, Delegate, HttpError, cors_headers, header, path_symbol, validated_query
from server.runtime import Runtime, get_runtime
from server.schema import encode_json
from server.stats import TransportStats

__all__ = ["PREFIX", "router", "serve"]

router = APIRouter(tags=["sse"])

PREFIX = "/api/stream/"
MAX_EVENT_ID = 128
"""Longer resume ids are bad input (422): real ones are `<epoch>:<seq>`."""
HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
)
HEARTBEAT = b": keep-alive\n\n"
HEARTBEAT_CHUNK = chunk(HEARTBEAT)


class StreamQuery(BaseModel):
    last_event_id: str | None = Field(
        None, max_length=MAX_EVENT_ID, description="Resume point for a browser's first connect."
    )


def gap_event(symbol: str, epoch: str, reason: str) -> bytes:
    data = encode_json({"symbol": symbol, "epoch": epoch, "reason": reason})
    return b"event: gap\ndata: %s\n\n" % data


class SseListener(ClientListener):
    """One SSE client. In step with the ring, its outlet gets each tick's bytes from the hub
    directly; otherwise (socket pushing back, a gap, no outlet) its task catches up from the ring."""

    __slots__ = ("beat_due", "cursor", "outlet", "stalled", "stats")

    def __init__(self, cursor: int, stats: TransportStats) -> None:
        super().__init__()
        self.cursor = cursor
        self.stats = stats
        self.outlet: Outlet | None = None
        self.stalled = True
        """The task, not the hub, writes next: set until it has caught up."""
        self.beat_due = False

    def on_entry(self, entry: Entry) -> None:
        outlet = self.outlet
        if outlet is not None and not self.stalled and entry.seq == self.cursor + 1 and outlet.ready():
            outlet.write(entry.sse_chunk)
            self.cursor = entry.seq
            self.stats.messages_sent += 1
            self.stats.bytes_sent += len(entry.sse)
        else:
            self.stalled = True
            self.hand_to_task()

    def on_beat(self) -> None:
        outlet = self.outlet
        if outlet is not None and not self.stalled and outlet.ready():
            outlet.write(HEARTBEAT_CHUNK)
            self.stats.bytes_sent += len(HEARTBEAT)
        else:
            self.beat_due = True
            self.hand_to_task()

    def hand_to_task(self) -> None:
        """The hub cannot write: wake the task, telling it if that is because the client left."""
        self.disconnected = self.disconnected or (self.outlet is not None and self.outlet.gone())
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


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/stream/{symbol}`, as plain ASGI (see `server.front_door`)."""
    stats = runtime.stats.sse
    stats.requests += 1
    topic = runtime.topic_or_404(path_symbol(scope, PREFIX))
    resume_from = header(scope, b"last-event-id")
    if resume_from is None:
        resume_from = validated_query(StreamQuery, scope).last_event_id
    elif len(resume_from) > MAX_EVENT_ID:
        raise HttpError(422, f"Last-Event-ID longer than {MAX_EVENT_ID} characters")
    if runtime.at_capacity():
        stats.rejected += 1
        raise HttpError(503, "too many open connections")
    preamble, cursor, sent = preamble_for(runtime, topic, resume_from)
    await stream(runtime, topic, preamble, cursor, sent, scope, receive, send)


async def stream(
    runtime: Runtime,
    topic: Topic,
    preamble: bytes,
    cursor: int,
    sent: int,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """The SSE response: a preamble (retry, maybe a gap, the resumed ticks), then live ticks."""
    hub = runtime.hub
    stats = runtime.stats.sse
    listener = SseListener(cursor, stats)
    watcher = asyncio.ensure_future(listener.watch(receive))
    stats.open_connections += 1
    stats.messages_sent += sent
    try:
        headers = [*HEADERS, *cors_headers(runtime.settings.cors, scope)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        listener.outlet = http_outlet(send)
        stats.direct_connections += listener.outlet is not None
        topic.listeners.add(listener)
        hub.heartbeats.add(listener)
        body = preamble
        while not (listener.disconnected or hub.closing):
            if body:
                listener.stalled = True  # the task holds the pen until it has caught up
                if listener.outlet is not None and listener.outlet.gone():
                    listener.disconnected = True  # (a client that pipelined behind us is not flagged)
                    break
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
    PREFIX + "{symbol}",
    status_code=200,
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`event: tick` events, forever."},
        404: {},
        503: {"description": "Too many open connections."},
    },
)
async def event_stream(
    symbol: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    query: Annotated[StreamQuery, Query()],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=MAX_EVENT_ID)] = None,
) -> Delegate:
    """Ticks of one symbol as Server-Sent Events, resumable with `Last-Event-ID: <epoch>:<seq>`.

    An unknown or stale id starts from the latest tick, after an `event: gap`.
    """
    return Delegate(functools.partial(serve, runtime))
