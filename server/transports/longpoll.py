"""Long polling, the midway: a request is held until a tick newer than its cursor exists."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from server.hot_routes import UNKNOWN_SYMBOL, HotRoute, ResponseDoc
from server.hub import Entry, Topic
from server.rawhttp import (
    Answer,
    ClientListener,
    Headers,
    error_body,
    path_symbol,
    respond,
    validated_query,
)
from server.runtime import Runtime
from server.schema import LongPollReply, SeqCursor
from server.wire import longpoll_reply

__all__ = ["ROUTE", "Hold", "after_hold", "begin", "serve"]

PREFIX = "/api/longpoll/"
NO_STORE = (b"cache-control", b"no-store")
SHUTDOWN_RETRY_AFTER_S = 2
"""What a held long poll is told to wait when the server shuts down (seconds)."""


class LongPollQuery(BaseModel):
    after: SeqCursor | None = Field(None, description="Last seq the client has.")
    timeout: float = Field(25, ge=1, le=60, description="Seconds to hold.")
    epoch: str | None = Field(None, max_length=64, description="Epoch `after` counts in.")


@dataclass(frozen=True, slots=True)
class Hold:
    """A long poll with nothing to say yet: wait on `topic` for a tick after `after`."""

    topic: Topic
    after: int
    timeout: float
    headers: Headers
    epoch: str
    """The history `after` counts in: if it is lost meanwhile (a Redis that lost its data), a gap."""


def begin(runtime: Runtime, scope: Scope) -> Answer | Hold:
    """What a long poll gets at once, or that it must be held (whichever way the request came
    in: `serve` below, or `server.transports.http_socket`). Raises `HttpError` for bad input."""
    stats = runtime.stats.longpoll
    stats.requests += 1
    topic = runtime.topic_or_404(path_symbol(scope, PREFIX))
    query = validated_query(LongPollQuery, scope)
    after = query.after
    headers = [NO_STORE, *runtime.cors.headers(scope)]
    if after is None:
        return reply(runtime, headers, [runtime.latest_or_503(topic.symbol)], gap=False)
    if query.epoch is not None and query.epoch != runtime.hub.epoch:
        return reply(runtime, headers, [runtime.latest_or_503(topic.symbol)], gap=True)
    entries, gap = topic.resume(after)
    if entries:
        return reply(runtime, headers, entries, gap)
    if runtime.hub.closing:  # shutting down: hold nothing, or a re-poll on this connection would hang the exit
        return shutting_down(runtime, headers)
    return Hold(topic, after, query.timeout, headers, runtime.hub.epoch)


def after_hold(runtime: Runtime, hold: Hold) -> Answer:
    """The answer once the hold ends (a tick, the timeout, or shutdown)."""
    if hold.epoch != runtime.hub.epoch:
        latest = hold.topic.latest
        if latest is not None:
            return reply(runtime, hold.headers, [latest], gap=True)
    entries, gap = hold.topic.resume(hold.after)
    if entries:
        return reply(runtime, hold.headers, entries, gap)
    if runtime.hub.closing:
        return shutting_down(runtime, hold.headers)
    runtime.stats.longpoll.empty_responses += 1
    return 204, hold.headers, b""


def shutting_down(runtime: Runtime, headers: Headers) -> Answer:
    """503 with `retry-after`: a 204 would tell the client "nothing new, ask again now", and it
    would, at once and over and over, until the server is gone."""
    runtime.stats.longpoll.rejected += 1
    retry = b"%d" % SHUTDOWN_RETRY_AFTER_S
    return (
        503,
        [*headers, (b"retry-after", retry), (b"connection", b"close")],
        error_body("the server is shutting down"),
    )


def reply(runtime: Runtime, headers: Headers, entries: list[Entry], gap: bool) -> Answer:
    body = longpoll_reply([e.json for e in entries], gap)
    stats = runtime.stats.longpoll
    stats.messages_sent += len(entries)
    stats.bytes_sent += len(body)
    return 200, headers, body


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/longpoll/{symbol}` by ASGI."""
    outcome = begin(runtime, scope)
    if isinstance(outcome, Hold):
        held = await hold(runtime, outcome, receive, send)
        if held is None:
            return  # the client left; nobody to answer
        outcome = held
    status, headers, body = outcome
    runtime.stats.longpoll.direct_writes += await respond(runtime.fast_path, send, status, body, headers)


async def hold(runtime: Runtime, pending: Hold, receive: Receive, send: Send) -> Answer | None:
    """Wait for a tick, the timeout or shutdown; None if the client left meanwhile."""
    stats = runtime.stats.longpoll
    held = ClientListener()
    exchange = runtime.fast_path.exchange(send)
    disconnect_waiters = None
    if exchange is not None:  # wait for "tick or client gone" on one future, without a watcher task
        if (await receive())["type"] == "http.disconnect":  # (this also readies uvicorn's event)
            return None
        disconnect_waiters = exchange.disconnect_waiters()
    watcher = None if disconnect_waiters is not None else asyncio.ensure_future(held.watch(receive))
    stats.open_connections += 1
    try:
        with runtime.hub.subscribe(pending.topic.symbol, held):
            await held.sleep(pending.timeout, also=disconnect_waiters)
    finally:
        if watcher is not None:
            watcher.cancel()
        stats.open_connections -= 1
    if held.disconnected or (exchange is not None and exchange.disconnected):
        return None  # the slot is free already
    return after_hold(runtime, pending)


ROUTE = HotRoute(
    method="GET",
    path=PREFIX + "{symbol}",
    handler=serve,
    tag="long poll",
    summary="Long Poll",
    description=(
        "Every tick after `after` at once if there are any; else hold until one arrives, or 204.\n\n"
        "No `after`: the latest tick at once. A cursor that history no longer covers, an old epoch, "
        "or a cursor ahead of the newest tick: the latest tick at once, with `gap: true`."
    ),
    query=LongPollQuery,
    responses={
        200: ResponseDoc("The ticks after `after`, or the latest with `gap` set.", LongPollReply),
        204: ResponseDoc("Nothing newer than `after` arrived within `timeout`."),
        404: UNKNOWN_SYMBOL,
        503: ResponseDoc("Too many open connections, or the server is shutting down (`retry-after`)."),
    },
)
