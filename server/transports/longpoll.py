"""Long polling, the midway: a request is held until a tick newer than its cursor exists."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from server.hub import Entry, Topic
from server.outlets import http_exchange
from server.rawhttp import (
    ClientListener,
    Delegate,
    Headers,
    HttpError,
    cors_headers,
    error_body,
    path_symbol,
    query_params,
    respond,
    validated_query,
)
from server.runtime import Runtime, get_runtime
from server.schema import LongPollReply

__all__ = ["PREFIX", "router", "serve"]

router = APIRouter(tags=["long poll"])

PREFIX = "/api/longpoll/"
NO_STORE = (b"cache-control", b"no-store")


class LongPollQuery(BaseModel):
    after: int | None = Field(None, ge=0, description="Last seq the client has.")
    timeout: float = Field(25, ge=1, le=60, description="Seconds to hold.")
    epoch: str | None = Field(None, max_length=64, description="Epoch `after` counts in.")


def parse_query(scope: Scope) -> tuple[int | None, float, str | None]:
    """(after, timeout, epoch). The usual `after=41&timeout=25` is read directly (a tenth of a
    long poll's CPU went to validating it at 10,000 requests/s); anything else goes through
    `LongPollQuery`, which also words the 422."""
    params = query_params(scope)
    after, timeout = params.get("after", ""), params.get("timeout", "25")
    epoch = params.get("epoch")
    if (
        after.isascii()
        and after.isdigit()
        and timeout.isascii()
        and timeout.isdigit()
        and 1 <= int(timeout) <= 60
        and (epoch is None or len(epoch) <= 64)
        and len(after) < 20
        and params.keys() <= {"after", "timeout", "epoch"}
    ):
        return int(after), float(timeout), epoch
    query = validated_query(LongPollQuery, scope)
    return query.after, query.timeout, query.epoch


SHUTDOWN_RETRY_AFTER_S = 2
"""What a held long poll is told to wait when the server shuts down (seconds)."""


def reply(entries: list[Entry], gap: bool) -> bytes:
    """The `{"ticks": [...], "gap": bool}` envelope, joined from the shared encodings."""
    return b'{"ticks":[' + b",".join(e.json for e in entries) + (b'],"gap":true}' if gap else b'],"gap":false}')


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/longpoll/{symbol}`, as plain ASGI (see `server.front_door`)."""
    stats = runtime.stats.longpoll
    stats.requests += 1
    topic = runtime.topic_or_404(path_symbol(scope, PREFIX))
    after, timeout, epoch = parse_query(scope)
    headers = [NO_STORE, *cors_headers(runtime.settings.cors, scope)]
    hub = runtime.hub
    if after is None:
        await answer(runtime, send, headers, [runtime.latest_or_503(topic.symbol)], gap=False)
        return
    if epoch is not None and epoch != hub.epoch:
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
    exchange = http_exchange(send)
    disconnect_waiters = None
    if exchange is not None:  # wait for "tick or client gone" on one future, without a watcher task
        if (await receive())["type"] == "http.disconnect":  # (this also readies uvicorn's event)
            return
        disconnect_waiters = exchange.disconnect_waiters()
    watcher = None if disconnect_waiters is not None else asyncio.ensure_future(held.watch(receive))
    topic.listeners.add(held)
    stats.open_connections += 1
    try:
        await held.sleep(timeout, also=disconnect_waiters)
    finally:
        if watcher is not None:
            watcher.cancel()
        stats.open_connections -= 1
        topic.listeners.discard(held)
    if held.disconnected or (exchange is not None and exchange.disconnected):
        return  # nobody to answer; the slot is free already
    if await answer_now(runtime, topic, after, send, headers):
        return
    if hub.closing:
        await shutting_down(runtime, send, headers)
        return
    stats.empty_responses += 1
    await respond(send, 204, headers=headers)


async def shutting_down(runtime: Runtime, send: Send, headers: Headers) -> None:
    """503 with `retry-after`: a 204 would tell the client "nothing new, ask again now", and it
    would, at once and over and over, until the server is gone."""
    runtime.stats.longpoll.rejected += 1
    retry = b"%d" % SHUTDOWN_RETRY_AFTER_S
    await respond(
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
    body = reply(entries, gap)
    stats = runtime.stats.longpoll
    stats.messages_sent += len(entries)
    stats.bytes_sent += len(body)
    await respond(send, 200, body, headers)


@router.get(
    PREFIX + "{symbol}",
    response_model=LongPollReply,
    responses={204: {"description": "Nothing newer than `after` arrived within `timeout`."}, 404: {}},
)
async def long_poll(
    symbol: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    query: Annotated[LongPollQuery, Query()],
) -> Delegate:
    """Every tick after `after` at once if there are any; else hold until one arrives, or 204.

    No `after`: the latest tick at once. A cursor that history no longer covers, an old epoch,
    or a cursor ahead of the newest tick: the latest tick at once, with `gap: true`.
    """
    return Delegate(functools.partial(serve, runtime))
