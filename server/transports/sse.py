"""Server-Sent Events: one long response per client, each tick an event with `id: <epoch>:<seq>`.

The response is a raw ASGI loop rather than a StreamingResponse: no queue, no task per tick, just
a `StreamSubscriber` (`server.stream`) with one cursor into the symbol's ring.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from server.hot_routes import UNKNOWN_SYMBOL, HeaderDoc, HotRoute, ResponseDoc
from server.hub import Hub, Topic
from server.rawhttp import HttpError, client_gone_is_quiet, header, path_symbol, validated_query
from server.runtime import Runtime
from server.stats import TransportStats
from server.stream import StreamSubscriber
from server.wire import SSE, sse_gap, sse_retry

__all__ = ["ROUTE", "serve"]

PREFIX = "/api/stream/"
MAX_EVENT_ID = 128
"""Longer resume ids are bad input (422): real ones are `<epoch>:<seq>`."""
HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
)


class StreamQuery(BaseModel):
    last_event_id: str | None = Field(
        None, max_length=MAX_EVENT_ID, description="Resume point for a browser's first connect."
    )


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/stream/{symbol}`: validate, then stream until the client or the server leaves."""
    stats = runtime.stats.sse
    stats.requests += 1
    topic = runtime.topic_or_404(path_symbol(scope, PREFIX))
    resume_from = header(scope, b"last-event-id")
    if resume_from is None:
        resume_from = validated_query(StreamQuery, scope).last_event_id
    elif len(resume_from) > MAX_EVENT_ID:
        raise HttpError(422, f"Last-Event-ID longer than {MAX_EVENT_ID} characters")
    preamble, cursor, sent = preamble_for(runtime, topic, resume_from)
    if scope.get("http_version") == "1.0":
        await answer_once(runtime, topic, preamble, cursor, sent, scope, receive, send)
        return
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
    subscriber = SseStream(hub, stats, send)
    subscriber.cursors[topic.symbol] = cursor
    watcher = asyncio.ensure_future(watch(subscriber, receive))
    stats.open_connections += 1
    stats.messages_sent += sent
    try:
        headers = [*HEADERS, *runtime.cors.headers(scope)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        subscriber.outlet = runtime.fast_path.stream_outlet(send)
        stats.direct_connections += subscriber.outlet is not None
        with hub.subscribe(topic.symbol, subscriber), hub.follow_heartbeats(subscriber):
            await subscriber.send_body([preamble])
            stats.bytes_sent += len(preamble)
            while True:
                await subscriber.catch_up(subscriber.send_body)
                if subscriber.left or hub.closing:
                    break
                await subscriber.sleep()
    finally:
        watcher.cancel()
        stats.open_connections -= 1
        if not subscriber.left:
            with client_gone_is_quiet():
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def answer_once(
    runtime: Runtime,
    topic: Topic,
    preamble: bytes,
    cursor: int,
    sent: int,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """The SSE response for an HTTP/1.0 client, which must not get chunked encoding (RFC 9112,
    6.1), while ASGI servers (uvicorn) frame any streamed body without a length as chunks: one
    complete response with a length, then the connection closes. It holds the preamble and, if
    that has no tick, whatever comes first (ticks, or a heartbeat when the period passes), like
    a long poll; the client reconnects with `Last-Event-ID` and resumes without loss."""
    hub = runtime.hub
    stats = runtime.stats.sse
    subscriber = SseStream(hub, stats, send)
    subscriber.cursors[topic.symbol] = cursor
    body = [preamble]
    stats.open_connections += 1
    try:
        if sent == 0:
            watcher = asyncio.ensure_future(watch(subscriber, receive))
            try:
                with hub.subscribe(topic.symbol, subscriber), hub.follow_heartbeats(subscriber):
                    while not (subscriber.left or hub.closing):
                        payloads, sent = subscriber.backlog()
                        if payloads:
                            body += payloads
                            break
                        await subscriber.sleep()
            finally:
                watcher.cancel()
    finally:
        stats.open_connections -= 1
    if subscriber.left:
        return
    content = b"".join(body)
    stats.messages_sent += sent
    stats.bytes_sent += len(content)
    headers = [*HEADERS, (b"content-length", b"%d" % len(content)), (b"connection", b"close")]
    with client_gone_is_quiet():
        await send({"type": "http.response.start", "status": 200, "headers": headers + runtime.cors.headers(scope)})
        await send({"type": "http.response.body", "body": content, "more_body": False})


class SseStream(StreamSubscriber[bytes]):
    """One SSE response's subscriber, and its body's way out through ASGI."""

    __slots__ = ("_send",)

    def __init__(self, hub: Hub, stats: TransportStats, send: Send) -> None:
        super().__init__(hub, SSE, stats)
        self._send = send

    async def send_body(self, payloads: list[bytes]) -> None:
        try:
            await self._send({"type": "http.response.body", "body": b"".join(payloads), "more_body": True})
        except (OSError, RuntimeError):  # see `client_gone_is_quiet`
            self.left = True


async def watch(subscriber: StreamSubscriber[bytes], receive: Receive) -> None:
    """Notice the client leaving even while no tick flows (a send after it would be silent), so
    it stops counting as an open connection at once."""
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.left = True
    subscriber.wake()


def parse_event_id(value: str) -> tuple[str, int] | None:
    epoch, _, seq = value.strip().rpartition(":")
    if not epoch or not (seq.isascii() and seq.isdigit()):  # (int() takes "²" and other scripts' digits)
        return None
    return epoch, int(seq)


def preamble_for(runtime: Runtime, topic: Topic, last_event_id: str | None) -> tuple[bytes, int, int]:
    """Where a stream starts: (bytes to send first, cursor after them, ticks among them)."""
    retry = sse_retry(runtime.settings.sse_retry_ms)
    latest = runtime.latest_or_503(topic.symbol)
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
    return retry + sse_gap(topic.symbol, epoch, reason) + latest.sse, latest.seq, 1


ROUTE = HotRoute(
    method="GET",
    path=PREFIX + "{symbol}",
    handler=serve,
    tag="sse",
    summary="Event Stream",
    description=(
        "Ticks of one symbol as Server-Sent Events, resumable with `Last-Event-ID: <epoch>:<seq>`.\n\n"
        "An unknown or stale id starts from the latest tick, after an `event: gap`."
    ),
    query=StreamQuery,
    headers=(HeaderDoc("Last-Event-ID", "Resume point (a reconnecting EventSource sends it).", MAX_EVENT_ID),),
    responses={
        200: ResponseDoc("`event: tick` events, forever.", media_type="text/event-stream"),
        404: UNKNOWN_SYMBOL,
        503: ResponseDoc("Too many open connections."),
    },
)
