"""Plain-ASGI helpers for the hot endpoints, which `server.front_door` serves without FastAPI.

They parse what little the endpoints need, validate with the same pydantic models that document
them (`server.hot_routes`), and answer with the same JSON errors FastAPI would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TypeVar
from urllib.parse import parse_qsl

from fastapi import HTTPException
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from server.fast_path import FastPath
from server.hub import Listener
from server.schema import MAX_MESSAGE_BYTES
from server.wire import error_body

__all__ = [
    "Answer",
    "ClientListener",
    "Headers",
    "HttpError",
    "client_gone_is_quiet",
    "error_answer",
    "error_body",
    "header",
    "path_symbol",
    "query_params",
    "read_body",
    "respond",
    "validated_body",
    "validated_query",
    "with_length",
]

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
"""A complete short response: status, headers (content-length and -type are added), body."""

HttpError = HTTPException
"""Raised before a response starts; the front door (or FastAPI) turns it into `{"detail": ...}`."""

JSON = b"application/json"

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as a dict; a repeated name keeps its last value, as Starlette does."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    params: dict[str, str] = {}
    for pair in text.split("&"):  # the common case, `after=41&timeout=25`, needs no unquoting
        if pair:
            name, _, value = pair.partition("=")
            params[name] = value
    return params


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (lower-case `name`), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def validated_query(model: type[M], scope: Scope) -> M:
    """The query string checked against `model`; a bad one is a 422 shaped like FastAPI's."""
    try:
        return model.model_validate(query_params(scope))
    except ValidationError as exc:
        errors = [
            {"type": e["type"], "loc": ["query", *e["loc"]], "msg": e["msg"], "input": e["input"]}
            for e in exc.errors(include_url=False)
        ]
        raise HttpError(422, errors) from None


async def respond(
    fast_path: FastPath,
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes | None = JSON,
) -> bool:
    """A complete response with its length: one socket write on the fast path (True), else two
    ASGI messages (False)."""
    raw = with_length(status, body, headers, content_type)
    exchange = fast_path.exchange(send)
    if exchange is not None:
        if exchange.disconnected:
            return False  # nobody to answer, and a closed socket must not be written to
        if exchange.respond(status, raw, body):
            return True
    with client_gone_is_quiet():
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
    return False


def with_length(
    status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]], content_type: bytes | None = JSON
) -> Headers:
    """`headers` plus the body's length and type (none for a bodiless 204 or 304)."""
    raw: Headers = [*headers]
    if body or status not in (204, 304):
        raw.append((b"content-length", b"%d" % len(body)))
        if content_type is not None:
            raw.append((b"content-type", content_type))
    return raw


@contextlib.contextmanager
def client_gone_is_quiet() -> Iterator[None]:
    """Around an ASGI `send`: a client that left makes it raise (OSError, as ASGI says, or the
    event loop's RuntimeError for a closed transport: uvicorn flags only a connection's newest
    request as disconnected, so one with a request pipelined behind it writes to a closed
    socket). Nobody is left to answer; that is not an error."""
    with contextlib.suppress(OSError, RuntimeError):
        yield


def error_answer(exc: StarletteHTTPException, extra: Headers) -> Answer:
    """`{"detail": ...}` with the error's own headers (`retry-after`, `www-authenticate`) and `extra`."""
    headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    return exc.status_code, [*headers, *extra], error_body(exc.detail)


def path_symbol(scope: Scope, prefix: str) -> str:
    """The `{symbol}` of `<prefix>{symbol}`; anything deeper or empty is not a route (404)."""
    symbol: str = scope["path"][len(prefix) :]
    if not symbol or "/" in symbol:
        raise HttpError(404, "Not Found")
    return symbol


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """The request body, refusing (413) more than `limit` bytes without reading past it."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the client went away mid-body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def validated_body(model: TypeAdapter[T], raw: bytes) -> T:
    """A JSON body checked against `model`; a bad one is a 422 shaped like FastAPI's."""
    try:
        return model.validate_json(raw)
    except ValidationError as exc:
        # Without `input`: a NaN or Infinity echoed back would make the error itself unencodable.
        raise HttpError(422, exc.errors(include_url=False, include_input=False)) from None


class ClientListener(Listener):
    """A listener serving one HTTP request, woken also when its client leaves."""

    __slots__ = ("disconnected",)

    def __init__(self) -> None:
        super().__init__()
        self.disconnected = False

    async def watch(self, receive: Receive) -> None:
        """Notice the client leaving even while no tick flows (a send after it would be silent),
        so it stops counting as an open connection at once."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        self.wake()
