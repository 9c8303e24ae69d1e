"""Bytes on the wire, both ways: what an update really costs, headers and framing included.

Counting payload alone hides the cost of polling: a 304 has no body, yet it is a request line,
a dozen headers and a status line. So every mode adds up, per exchange, what HTTP/1.1 and
RFC 6455 put on the connection, rebuilt from what the client libraries expose:

- an HTTP request: `METHOD target HTTP/1.1`, each `name: value` header, the blank line, the body
  (exactly what h11 writes);
- an HTTP response: `HTTP/1.1 code reason`, each header, the blank line, the body; a chunked
  body (SSE) adds its chunk framing (`<size hex>\\r\\n ... \\r\\n`) per piece received, which is
  one chunk per event on this server;
- a WebSocket: its upgrade request and response, then per message a 2-byte header (4 and 10
  for longer payloads), plus a 4-byte mask on frames the client sends.

Not counted: TCP/IP headers and TLS records (below HTTP, the same for every mode), and
WebSocket protocol pings (about 16 bytes each way per 20 s, which the libraries answer unseen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import httpx

__all__ = [
    "CountingStream",
    "chunk_framing",
    "head_bytes",
    "request_bytes",
    "response_head_bytes",
    "ws_frame_bytes",
]

CRLF = 2


def head_bytes(start_line: str, headers: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    """A start line, `name: value` headers and the blank line that ends them."""
    total = len(start_line.encode("latin-1")) + CRLF
    for name, value in headers:
        total += len(name) + 2 + len(value) + CRLF
    return total + CRLF


def request_bytes(request: httpx.Request) -> int:
    """The request line, headers and body httpx sent."""
    start = f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1"
    return head_bytes(start, request.headers.raw) + len(request.content)


def response_head_bytes(response: httpx.Response) -> int:
    """The status line and headers of a response (its body is counted as it arrives)."""
    return head_bytes(f"HTTP/1.1 {response.status_code} {response.reason_phrase}", response.headers.raw)


def chunk_framing(size: int) -> int:
    """The bytes around one chunk of `size` bytes: its hex size line and the CRLF after it."""
    return len(f"{size:x}") + CRLF + CRLF


def ws_frame_bytes(payload: int, *, from_client: bool) -> int:
    """One unfragmented WebSocket frame carrying `payload` bytes."""
    header = 2 if payload < 126 else 4 if payload < 65536 else 10
    return header + (4 if from_client else 0) + payload


class CountingStream(httpx.AsyncByteStream):
    """A response body stream that reports each piece's size (and its chunk framing) as it passes.

    Example:

        response.stream = CountingStream(response.stream, on_bytes, chunked=True)
    """

    def __init__(self, inner: httpx.AsyncByteStream, on_bytes: Callable[[int], None], *, chunked: bool) -> None:
        self.inner = inner
        self.on_bytes = on_bytes
        self.chunked = chunked

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.inner:
            if piece:
                self.on_bytes(len(piece) + (chunk_framing(len(piece)) if self.chunked else 0))
            yield piece

    async def aclose(self) -> None:
        await self.inner.aclose()
