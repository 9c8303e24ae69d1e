"""HTTP polling: the latest tick with an ETag; an unchanged price answers 304 with no body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from server.runtime import Runtime, get_runtime
from server.schema import Tick

__all__ = ["router"]

router = APIRouter(tags=["poll"])


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


@router.get(
    "/api/price/{symbol}",
    response_model=Tick,
    responses={304: {"description": "Not modified: the ETag still names the latest tick."}, 404: {}},
)
async def latest_price(
    symbol: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The latest tick. Send the last `ETag` as `If-None-Match` to get 304 while it has not changed."""
    stats = runtime.stats.poll
    stats.requests += 1
    entry = runtime.latest_or_503(symbol)
    etag = f'"{entry.tick.epoch}:{entry.seq}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, etag):
        stats.empty_responses += 1
        return Response(status_code=304, headers=headers)
    stats.messages_sent += 1
    stats.bytes_sent += len(entry.json)
    return Response(entry.json, media_type="application/json", headers=headers)
