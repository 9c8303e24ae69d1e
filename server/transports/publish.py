"""`POST /api/publish`: ticks from outside (a bench, a script), behind a bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from server.runtime import Runtime, get_runtime
from server.schema import BatchPublish, PublishItem, Tick, round_to_tick

__all__ = ["MAX_BODY_BYTES", "read_json_body", "read_validated_body", "router"]

router = APIRouter(tags=["publish"])

MAX_BODY_BYTES = 64 * 1024
"""Largest request body the API accepts (413 past it)."""

PublishBody: TypeAdapter[PublishItem | BatchPublish] = TypeAdapter(PublishItem | BatchPublish)
Body = TypeVar("Body")


async def read_json_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing (413) more than `limit` bytes without reading past it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_validated_body(request: Request, schema: TypeAdapter[Body]) -> Body:
    """The body, size-limited and validated: 413 or 422 (`{"detail": [...]}`) otherwise."""
    raw = await read_json_body(request)
    try:
        return schema.validate_json(raw)
    except ValidationError as exc:
        # Without `input`: a NaN or Infinity echoed back would make the error itself unencodable.
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def check_token(runtime: Runtime, authorization: str | None) -> None:
    expected = runtime.settings.publish_token
    if not expected:
        raise HTTPException(403, "publishing is off: start the server with --publish-token")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


@router.post(
    "/api/publish",
    status_code=201,
    response_model=Tick | dict[str, list[Tick]],
    responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            PublishItem.model_json_schema(ref_template="#/components/schemas/{model}"),
                            BatchPublish.model_json_schema(ref_template="#/components/schemas/{model}"),
                        ]
                    }
                }
            },
        }
    },
)
async def publish(
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Publish `{"symbol", "price"}` or `{"ticks": [...]}`; answers the stored tick(s).

    Prices are rounded to the NSE tick size (0.05). A batch is checked whole before any of it
    is published.
    """
    check_token(runtime, authorization)
    body = await read_validated_body(request, PublishBody)
    items = body.ticks if isinstance(body, BatchPublish) else [body]
    for item in items:
        runtime.topic_or_404(item.symbol)
    ticks = await runtime.publish([(item.symbol, round_to_tick(item.price)) for item in items])
    joined = b",".join(t.to_json() for t in ticks)
    content = joined if isinstance(body, PublishItem) else b'{"ticks":[' + joined + b"]}"
    return Response(content, status_code=201, media_type="application/json")
