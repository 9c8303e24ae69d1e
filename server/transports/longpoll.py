"""Long polling, the midway: a request is held until a tick newer than its cursor exists."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from server.hub import Entry, Listener
from server.runtime import Runtime, get_runtime
from server.schema import LongPollReply

__all__ = ["router"]

router = APIRouter(tags=["long poll"])


def reply(entries: list[Entry], gap: bool) -> bytes:
    """The `{"ticks": [...], "gap": bool}` envelope, joined from the shared encodings."""
    return b'{"ticks":[' + b",".join(e.json for e in entries) + (b'],"gap":true}' if gap else b'],"gap":false}')


@router.get(
    "/api/longpoll/{symbol}",
    response_model=LongPollReply,
    responses={204: {"description": "Nothing newer than `after` arrived within `timeout`."}, 404: {}},
)
async def long_poll(
    symbol: str,
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    after: Annotated[int | None, Query(ge=0, description="Last seq the client has.")] = None,
    timeout: Annotated[float, Query(ge=1, le=60, description="Seconds to hold.")] = 25,
    epoch: Annotated[str | None, Query(max_length=64, description="Epoch `after` counts in.")] = None,
) -> Response:
    """Every tick after `after` at once if there are any; else hold until one arrives, or 204.

    No `after`: the latest tick at once. A cursor that history no longer covers, an old epoch,
    or a cursor ahead of the newest tick: the latest tick at once, with `gap: true`.
    """
    stats = runtime.stats.longpoll
    stats.requests += 1
    topic = runtime.topic_or_404(symbol)
    hub = runtime.hub
    if after is None:
        return _send(runtime, [runtime.latest_or_503(symbol)], gap=False)
    if epoch is not None and epoch != hub.epoch:
        return _send(runtime, [runtime.latest_or_503(symbol)], gap=True)
    if answer := _answer_now(runtime, symbol, after):
        return answer
    if hub.closing:  # shutting down: hold nothing, or a re-poll on this connection would hang the exit
        stats.empty_responses += 1
        return Response(status_code=204, headers={"Connection": "close"})
    if runtime.at_capacity():
        stats.rejected += 1
        return Response(b'{"detail":"too many open connections"}', 503, media_type="application/json")

    listener = Listener()
    topic.listeners.add(listener)
    stats.open_connections += 1
    watcher = asyncio.ensure_future(_wake_on_disconnect(request, listener))
    try:
        await listener.sleep(timeout)
    finally:
        watcher.cancel()
        stats.open_connections -= 1
        topic.listeners.discard(listener)
    if await request.is_disconnected():
        return Response(status_code=204)  # nobody to answer; the slot is free already
    if answer := _answer_now(runtime, symbol, after):
        return answer
    stats.empty_responses += 1
    return Response(status_code=204)


async def _wake_on_disconnect(request: Request, listener: Listener) -> None:
    """End the hold as soon as the client goes, so it stops counting as an open connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    listener.wake()


def _answer_now(runtime: Runtime, symbol: str, after: int) -> Response | None:
    """Ticks after the cursor (or the latest with a gap) if there is anything to say, else None."""
    entries, gap = runtime.topic_or_404(symbol).resume(after)
    if gap:
        return _send(runtime, [runtime.latest_or_503(symbol)], gap=True)
    return _send(runtime, entries, gap=False) if entries else None


def _send(runtime: Runtime, entries: list[Entry], gap: bool) -> Response:
    body = reply(entries, gap)
    stats = runtime.stats.longpoll
    stats.messages_sent += len(entries)
    stats.bytes_sent += len(body)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
