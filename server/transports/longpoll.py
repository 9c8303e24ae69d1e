"""Long polling, the midway: a request is held until a tick newer than its cursor exists."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from server.hot_routes import HotRoute, ResponseDoc
from server.hub import Entry, Topic
from server.rawhttp import ClientListener, Headers, HttpError, error_body, path_symbol, respond, validated_query
from server.runtime import Runtime
from server.schema import LongPollReply
from server.wire import longpoll_reply

__all__ = ["ROUTE", "serve"]

PREFIX = "/api/longpoll/"
NO_STORE = (b"cache-control", b"no-store")
SHUTDOWN_RETRY_AFTER_S = 2
"""What a held long poll is told to wait when the server shuts down (seconds)."""


class LongPollQuery(BaseModel):
    after: int | None = Field(None, ge=0, description="Last seq the client has.")
    timeout: float = Field(25, ge=1, le=60, description="Seconds to hold.")
    epoch: str | None = Field(None, max_length=64, description="Epoch `after` counts in.")


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/longpoll/{symbol}`: answer now if there is anything to say, else hold."""
    stats = runtime.stats.longpoll
    stats.requests += 1
    topic = runtime.topic_or_404(path_symbol(scope, PREFIX))
    query = validated_query(LongPollQuery, scope)
    after = query.after
    headers = [NO_STORE, *runtime.cors.headers(scope)]
    hub = runtime.hub
    if after is None:
        await answer(runtime, send, headers, [runtime.latest_or_503(topic.symbol)], gap=False)
        return
    if query.epoch is not None and query.epoch != hub.epoch:
        await answer(runtime, send, headers, [runtime.latest_or_503(topic.symbol)], gap=True)
        return
    if await answer_now(runtime, topic, after, send, headers):
        return
    if hub.closing:  # shutting down: hold nothing, or a re-poll on this connection would hang the exit
        await shutting_down(runtime, send, headers)
        return
    if runtime.at_capacity():
        stats.rejected += 1
        raise HttpError(503, "too many open connections")

    held = ClientListener()
    exchange = runtime.fast_path.exchange(send)
    disconnect_waiters = None
    if exchange is not None:  # wait for "tick or client gone" on one future, without a watcher task
        if (await receive())["type"] == "http.disconnect":  # (this also readies uvicorn's event)
            return
        disconnect_waiters = exchange.disconnect_waiters()
    watcher = None if disconnect_waiters is not None else asyncio.ensure_future(held.watch(receive))
    stats.open_connections += 1
    try:
        with hub.subscribe(topic.symbol, held):
            await held.sleep(query.timeout, also=disconnect_waiters)
    finally:
        if watcher is not None:
            watcher.cancel()
        stats.open_connections -= 1
    if held.disconnected or (exchange is not None and exchange.disconnected):
        return  # nobody to answer; the slot is free already
    if await answer_now(runtime, topic, after, send, headers):
        return
    if hub.closing:
        await shutting_down(runtime, send, headers)
        return
    stats.empty_responses += 1
    stats.direct_writes += await respond(runtime.fast_path, send, 204, headers=headers)


async def shutting_down(runtime: Runtime, send: Send, headers: Headers) -> None:
    """503 with `retry-after`: a 204 would tell the client "nothing new, ask again now", and it
    would, at once and over and over, until the server is gone."""
    runtime.stats.longpoll.rejected += 1
    retry = b"%d" % SHUTDOWN_RETRY_AFTER_S
    await respond(
        runtime.fast_path,
        send,
        503,
        error_body("the server is shutting down"),
        headers=[*headers, (b"retry-after", retry), (b"connection", b"close")],
    )


async def answer_now(runtime: Runtime, topic: Topic, after: int, send: Send, headers: Headers) -> bool:
    """Send the ticks after the cursor (or the latest with a gap), if there is anything to say."""
    entries, gap = topic.resume(after)
    if not entries:
        return False
    await answer(runtime, send, headers, entries, gap)
    return True


async def answer(runtime: Runtime, send: Send, headers: Headers, entries: list[Entry], gap: bool) -> None:
    body = longpoll_reply([e.json for e in entries], gap)
    stats = runtime.stats.longpoll
    stats.messages_sent += len(entries)
    stats.bytes_sent += len(body)
    stats.direct_writes += await respond(runtime.fast_path, send, 200, body, headers)


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
        404: ResponseDoc("Unknown symbol."),
        503: ResponseDoc("Too many open connections, or the server is shutting down (`retry-after`)."),
    },
)
