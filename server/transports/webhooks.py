"""`/api/webhooks`: register a receiver for some symbols, look at its deliveries, remove it.

Registering makes this server send requests where it is told, so with `--webhook-token` set (it
must be when `--webhook-allow` reaches beyond loopback) only a holder of the token may register,
and without one only a client on this machine may.
An endpoint's id, unguessable and known only to whoever registered it, is what its GET and
DELETE need.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from server.broker import BrokerUnavailable
from server.runtime import Runtime, get_runtime
from server.transports.publish import read_validated_body
from server.webhook_registry import TooManyWebhooks
from server.webhooks import TargetRefused

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])


class WebhookRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, examples=["http://127.0.0.1:9000/hook"])
    symbols: list[str] = Field(min_length=1, max_length=64)


REGISTRATION: TypeAdapter[WebhookRegistration] = TypeAdapter(WebhookRegistration)


def check_token(runtime: Runtime, authorization: str | None, client: str | None) -> None:
    """401 unless this bearer token is the server's `--webhook-token`; with none set, 403 unless
    the client is on this machine (`client`: its address). Without a token, registration is open
    to local clients only: a server listening beyond loopback must not let others aim it at this
    machine's loopback services."""
    expected = runtime.settings.webhook_token
    if expected is None:
        if not _is_loopback(client):
            raise HTTPException(
                403,
                "registering a webhook from another machine needs the server's --webhook-token "
                "(without one, only clients on the server's machine may register)",
            )
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(
            401,
            "missing or wrong bearer token: registering a webhook on this server needs its --webhook-token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class WebhookCreated(BaseModel):
    id: str
    secret: str = Field(description="Standard Webhooks secret (whsec_...) to verify deliveries with.")


@router.post(
    "/api/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={
        401: {"description": "The server has a `--webhook-token` and this is not it."},
        403: {"description": "The server has no `--webhook-token` and the client is not on its machine."},
        404: {},
        413: {},
        422: {},
        429: {},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookRegistration.model_json_schema()}},
        }
    },
)
async def register(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, str]:
    """Deliver ticks of `symbols` to `url` (http(s), resolving inside the allow-list: loopback
    and `--webhook-allow`). Each delivery is signed with the returned secret. With a
    `--webhook-token` on the server, send it as `Authorization: Bearer <token>`."""
    check_token(runtime, request.headers.get("authorization"), request.client.host if request.client else None)
    body = await read_validated_body(request, REGISTRATION)
    for symbol in body.symbols:
        runtime.topic_or_404(symbol)
    registry = runtime.webhook_registry
    try:
        limit = runtime.settings.max_webhooks
        if await registry.count() >= limit:
            raise TooManyWebhooks(limit)
        endpoint_id, secret = await registry.register(body.url, list(dict.fromkeys(body.symbols)), limit)
    except TooManyWebhooks:
        raise HTTPException(429, f"at most {runtime.settings.max_webhooks} webhooks; delete one first") from None
    except TargetRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except BrokerUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return {"id": endpoint_id, "secret": secret}


@router.get("/api/webhooks/{webhook_id}", responses={404: {}})
async def describe(webhook_id: str, runtime: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, Any]:
    """Delivery counters and state; a disabled endpoint says why."""
    try:
        described = await runtime.webhook_registry.describe(webhook_id)
    except BrokerUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if described is None:
        raise HTTPException(404, f"no webhook {webhook_id!r}")
    return described


@router.delete("/api/webhooks/{webhook_id}", status_code=204, responses={404: {}})
async def delete(webhook_id: str, runtime: Annotated[Runtime, Depends(get_runtime)]) -> Response:
    try:
        removed = await runtime.webhook_registry.remove(webhook_id)
    except BrokerUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if not removed:
        raise HTTPException(404, f"no webhook {webhook_id!r}")
    return Response(status_code=204)
