"""HTTP polling: the latest tick with an ETag; an unchanged price answers 304 with no body."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from starlette.types import Receive, Scope, Send

from server.rawhttp import Delegate, cors_headers, header, path_symbol, respond
from server.runtime import Runtime, get_runtime
from server.schema import Tick

__all__ = ["PREFIX", "router", "serve"]

router = APIRouter(tags=["poll"])

PREFIX = "/api/price/"


def etag_matches(if_none_match: str | None, etag: bytes) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag.decode() in candidates


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /api/price/{symbol}`, as plain ASGI (see `server.front_door`)."""
    stats = runtime.stats.poll
    stats.requests += 1
    entry = runtime.latest_or_503(path_symbol(scope, PREFIX))
    etag = b'"%s:%d"' % (entry.tick.epoch.encode(), entry.seq)
    headers = [(b"etag", etag), (b"cache-control", b"no-cache"), *cors_headers(runtime.settings.cors, scope)]
    if etag_matches(header(scope, b"if-none-match"), etag):
        stats.empty_responses += 1
        await respond(send, 304, headers=headers)
        return
    stats.messages_sent += 1
    stats.bytes_sent += len(entry.json)
    await respond(send, 200, entry.json, headers)


@router.get(
    PREFIX + "{symbol}",
    response_model=Tick,
    responses={304: {"description": "Not modified: the ETag still names the latest tick."}, 404: {}},
)
async def latest_price(
    symbol: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Delegate:
    """The latest tick. Send the last `ETag` as `If-None-Match` to get 304 while it has not changed."""
    return Delegate(functools.partial(serve, runtime))
