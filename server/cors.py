"""`--cors ORIGIN`: which web pages may read our answers. One policy for every route.

Hot endpoints add `headers()` to the one write that answers them; FastAPI's routes get the same
headers through `wrap()`; `preflight()` answers a browser's OPTIONS check for any path.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Message, Scope, Send

from server.rawhttp import Headers, header

__all__ = ["Cors"]

EXPOSE = (b"access-control-expose-headers", b"ETag")
VARY = (b"vary", b"Origin")
ALLOW_METHODS = (b"access-control-allow-methods", b"GET, POST, DELETE")
ALLOWED_HEADERS = ("authorization", "content-type", "if-none-match", "last-event-id")
"""What a page may send besides the CORS-safelisted headers (Accept, Accept-Language, ...)."""
SAFELISTED = {"accept", "accept-language", "content-language"}
MAX_AGE = (b"access-control-max-age", b"600")


class Cors:
    """The allowed origins (`*` for any) and the headers that say so."""

    __slots__ = ("allowed", "any_origin")

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = frozenset(allowed)
        self.any_origin = "*" in self.allowed

    def headers(self, scope: Scope) -> Headers:
        """What a simple cross-origin request from an allowed page gets. Unless every origin is
        allowed, the answer depends on `Origin`, so caches are told (`Vary`) either way."""
        if not self.allowed:
            return []
        origin = header(scope, b"origin")
        if self.any_origin:
            return [] if origin is None else [(b"access-control-allow-origin", b"*"), EXPOSE]
        if origin is not None and origin in self.allowed:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), EXPOSE, VARY]
        return [VARY]

    def preflight(self, scope: Scope) -> tuple[int, Headers, bytes] | None:
        """The answer to a browser's preflight (OPTIONS with `Access-Control-Request-Method`), or
        None for a request that is not one (or when CORS is off)."""
        if not self.allowed or scope["method"] != "OPTIONS":
            return None
        origin = header(scope, b"origin")
        method = header(scope, b"access-control-request-method")
        if origin is None or method is None:
            return None
        vary = [] if self.any_origin else [VARY]
        problems = []
        if not (self.any_origin or origin in self.allowed):
            problems.append("origin")
        if method.upper() not in ("GET", "POST", "DELETE"):
            problems.append("method")
        requested = [h.strip().lower() for h in (header(scope, b"access-control-request-headers") or "").split(",")]
        if any(h and h not in ALLOWED_HEADERS and h not in SAFELISTED for h in requested):
            problems.append("headers")
        if problems:
            body = b"Disallowed CORS " + ", ".join(problems).encode()
            return 400, [*vary, (b"content-type", b"text/plain; charset=utf-8")], body
        allow_origin = b"*" if self.any_origin else origin.encode("latin-1")
        headers = [
            (b"access-control-allow-origin", allow_origin),
            ALLOW_METHODS,
            (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
            MAX_AGE,
            *vary,
        ]
        return 200, [*headers, (b"content-type", b"text/plain; charset=utf-8")], b"OK"

    def wrap(self, scope: Scope, send: Send) -> Send:
        """`send` with this policy's headers added to the response start (for FastAPI's routes)."""
        extra = self.headers(scope)
        if not extra:
            return send

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return send_with_cors
