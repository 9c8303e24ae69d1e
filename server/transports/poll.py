"""HTTP polling: the latest tick with an ETag; an unchanged price answers 304 with no body."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from server.hot_routes import UNKNOWN_SYMBOL, HeaderDoc, HotRoute, ResponseDoc
from server.rawhttp import Answer, header, path_symbol, respond
from server.runtime import Runtime
from server.schema import Tick

__all__ = ["ROUTE", "serve"]

PREFIX = "/api/price/"


def etag_matches(if_none_match: str | None, etag: bytes) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag.decode() in candidates


def answer(runtime: Runtime, scope: Scope) -> Answer:
    """`GET /api/price/{symbol}`: the latest tick, or 304 if the client has it (whichever way
    the request came in: `serve` below, or `server.transports.http_socket`)."""
    stats = runtime.stats.poll
    stats.requests += 1
    entry = runtime.latest_or_503(path_symbol(scope, PREFIX))
    etag = b'"%s:%d"' % (entry.tick.epoch.encode(), entry.seq)
    headers = [(b"etag", etag), (b"cache-control", b"no-cache"), *runtime.cors.headers(scope)]
    if etag_matches(header(scope, b"if-none-match"), etag):
        stats.empty_responses += 1
        return 304, headers, b""
    stats.messages_sent += 1
    stats.bytes_sent += len(entry.json)
    return 200, headers, entry.json


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    status, headers, body = answer(runtime, scope)
    runtime.stats.poll.direct_writes += await respond(runtime.fast_path, send, status, body, headers)


ROUTE = HotRoute(
    method="GET",
    path=PREFIX + "{symbol}",
    handler=serve,
    tag="poll",
    summary="Latest Price",
    description="The latest tick. Send the last `ETag` as `If-None-Match` to get 304 while it has not changed.",
    headers=(HeaderDoc("If-None-Match", "The `ETag` of the tick you have."),),
    responses={
        200: ResponseDoc("The latest tick, with its `ETag`.", Tick),
        304: ResponseDoc("Not modified: the ETag still names the latest tick."),
        404: UNKNOWN_SYMBOL,
        503: ResponseDoc("No tick yet (history was reset); try again shortly."),
    },
)
