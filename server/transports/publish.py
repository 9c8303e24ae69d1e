"""`POST /api/publish`: ticks from outside (a bench, a script), behind a bearer token."""

from __future__ import annotations

import hmac
from typing import Any, TypeVar

from fastapi import Request
from pydantic import TypeAdapter
from starlette.types import Receive, Scope, Send

from server.broker import BrokerUnavailable
from server.hot_routes import UNKNOWN_SYMBOL, HotRoute, ResponseDoc
from server.rawhttp import HttpError, header, read_body, respond, validated_body
from server.runtime import Runtime
from server.schema import BatchPublish, PublishItem, Tick, round_to_tick

__all__ = ["ROUTE", "read_validated_body", "serve"]

PATH = "/api/publish"

PublishBody: TypeAdapter[PublishItem | BatchPublish] = TypeAdapter(PublishItem | BatchPublish)
Body = TypeVar("Body")


def _self_contained(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with each `#/$defs/...` reference replaced by its definition.

    Inside an OpenAPI document a `$ref` resolves against the whole document, where neither the
    `$defs` pydantic writes beside a model nor a component FastAPI never saw exist (Swagger UI
    shows "Resolver error", ReDoc renders nothing). Not for recursive models."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        resolved = {key: resolve(value) for key, value in node.items() if key not in ("$defs", "$ref")}
        if "$ref" in node:
            return {**resolve(defs[node["$ref"].removeprefix("#/$defs/")]), **resolved}
        return resolved

    result: dict[str, Any] = resolve(schema)
    return result


async def read_validated_body(request: Request, schema: TypeAdapter[Body]) -> Body:
    """The body, size-limited and validated: 413 or 422 (`{"detail": [...]}`) otherwise."""
    return validated_body(schema, await read_body(request.scope, request.receive))


def check_token(runtime: Runtime, authorization: str | None) -> None:
    expected = runtime.settings.publish_token
    if not expected:
        raise HttpError(403, "publishing is off: start the server with --publish-token")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HttpError(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def serve(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /api/publish`: the publish-to-delivery path is part of every tick's delay, so it is a
    hot route too (see docs/benchmarks.md, "Publish")."""
    check_token(runtime, header(scope, b"authorization"))
    body = validated_body(PublishBody, await read_body(scope, receive))
    items = body.ticks if isinstance(body, BatchPublish) else [body]
    for item in items:
        runtime.topic_or_404(item.symbol)
    try:
        ticks = await runtime.publish([(item.symbol, round_to_tick(item.price)) for item in items])
    except BrokerUnavailable as exc:
        raise HttpError(503, f"not published: {exc}", headers={"Retry-After": "2"}) from None
    joined = b",".join(t.to_json() for t in ticks)
    content = joined if isinstance(body, PublishItem) else b'{"ticks":[' + joined + b"]}"
    await respond(runtime.fast_path, send, 201, content, runtime.cors.headers(scope))


ROUTE = HotRoute(
    method="POST",
    path=PATH,
    handler=serve,
    tag="publish",
    summary="Publish",
    description=(
        'Publish `{"symbol", "price"}` or `{"ticks": [...]}` with `Authorization: Bearer <token>`; '
        "answers the stored tick(s).\n\nPrices are rounded to the NSE tick size (0.05). A batch is "
        "checked whole before any of it is published."
    ),
    responses={
        201: ResponseDoc('The stored tick, or `{"ticks": [...]}` for a batch.', Tick, batch="ticks"),
        401: ResponseDoc("Missing or wrong bearer token."),
        403: ResponseDoc("Publishing is off (no `--publish-token`)."),
        404: UNKNOWN_SYMBOL,
        413: ResponseDoc("Body over 64 KiB."),
        503: ResponseDoc("The broker (Redis) is unreachable; nothing was published. Try again after `Retry-After`."),
    },
    request_body={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _self_contained(PublishItem.model_json_schema()),
                        _self_contained(BatchPublish.model_json_schema()),
                    ]
                }
            }
        },
    },
)
