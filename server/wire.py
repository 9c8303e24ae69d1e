"""Every byte the server puts on a wire for a tick: JSON, SSE events, HTTP chunks, WebSocket frames.

Why one module: a tick is encoded once, when it arrives, into every form a transport sends, and
every subscriber gets those same bytes. Keeping the encodings together (and free of any server
framework) keeps them consistent, and lets the fast path and the portable ASGI path send the
same bytes. A `Framer` says how one kind of stream (SSE, WebSocket) turns a tick, a gap and a
heartbeat into its bytes; `server.stream` drives either with one subscriber.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = [
    "SSE",
    "SSE_HEARTBEAT",
    "WS",
    "Encodings",
    "Framer",
    "chunk",
    "encode_json",
    "error_body",
    "http_response",
    "longpoll_reply",
    "sse_gap",
    "sse_retry",
    "status_line",
    "tick_json",
    "ws_message",
    "ws_text_frame",
]

P = TypeVar("P", bytes, str)


def encode_json(value: object) -> bytes:
    """Compact JSON, the same bytes every time: ticks are encoded once and shared."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def tick_json(symbol: str, seq: int, price: float, ts: float, epoch: str) -> bytes:
    """A tick's JSON, with `ts` always at 6 decimals: a tick's size does not vary with its time."""
    return b'{"symbol":%s,"seq":%d,"price":%s,"ts":%.6f,"epoch":%s}' % (
        json.dumps(symbol).encode(),
        seq,
        repr(price).encode(),
        ts,
        json.dumps(epoch).encode(),
    )


_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK` and its line end, made once per status."""
    line = _status_lines.get(status)
    if line is None:
        line = _status_lines[status] = b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())
    return line


def http_response(status: int, defaults: bytes, headers: list[tuple[bytes, bytes]], body: bytes, close: bool) -> bytes:
    """A whole HTTP/1.1 response in one piece: status line, `defaults` (already encoded header
    lines), `headers`, `connection: close` if `close` and not among them, the blank line, the body."""
    parts = [status_line(status), defaults]
    parts += [b"%s: %s\r\n" % pair for pair in headers]
    if close and (b"connection", b"close") not in headers:
        parts.append(b"connection: close\r\n")
    parts += [b"\r\n", body]
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-encoding chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def ws_text_frame(text: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (server to client): the same bytes for every client."""
    size = len(text)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + text


SSE_HEARTBEAT = b": keep-alive\n\n"
"""An SSE comment: keeps proxies from timing the stream out; clients ignore it."""


def sse_retry(milliseconds: int) -> bytes:
    """The `retry:` field that tells EventSource how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def sse_gap(symbol: str, epoch: str, reason: str) -> bytes:
    """`event: gap`: ticks were skipped (`stale`), the epoch changed, or a resume id made no sense."""
    return b"event: gap\ndata: %s\n\n" % encode_json({"symbol": symbol, "epoch": epoch, "reason": reason})


def ws_message(kind: str, **fields: object) -> str:
    """A `{"type": kind, ...}` WebSocket text message (acks, gaps, errors, pongs)."""
    return encode_json({"type": kind, **fields}).decode()


def longpoll_reply(tick_jsons: list[bytes], gap: bool) -> bytes:
    """The long poll's `{"ticks": [...], "gap": bool}` envelope, joined from the shared encodings."""
    return b'{"ticks":[' + b",".join(tick_jsons) + (b'],"gap":true}' if gap else b'],"gap":false}')


@dataclass(frozen=True, slots=True)
class Encodings:
    """One tick in every form a transport sends, made once when the tick arrives."""

    json: bytes
    """The tick as compact JSON (poll, long poll, webhooks)."""
    sse: bytes
    """A complete `text/event-stream` event with `id: <epoch>:<seq>`."""
    sse_direct: tuple[bytes, int]
    """`sse` framed as one HTTP/1.1 chunk, for writing straight to the socket; and `len(sse)`."""
    ws: str
    """A `{"type": "tick", ...}` WebSocket text message."""
    ws_direct: tuple[bytes, int]
    """`ws` framed as one WebSocket text frame, likewise; and `len(ws)`."""

    @classmethod
    def of(cls, body: bytes, epoch: str, seq: int, /, **extra: Any) -> Self:
        """Every form of the tick whose JSON is `body` (`extra`: a subclass's own fields)."""
        sse = b"id: %s:%d\nevent: tick\ndata: %s\n\n" % (epoch.encode(), seq, body)
        ws = b'{"type":"tick",' + body[1:]
        return cls(
            json=body,
            sse=sse,
            sse_direct=(chunk(sse), len(sse)),
            ws=ws.decode(),
            ws_direct=(ws_text_frame(ws), len(ws)),
            **extra,
        )


class Framer(Protocol, Generic[P]):
    """How one kind of stream puts a tick, a gap and a heartbeat on its wire.

    A payload (`P`) is what goes through ASGI's `send` (SSE body bytes, WebSocket text); `direct`
    is the same payload framed for writing straight to the socket (an HTTP chunk, a WebSocket
    frame), which only the fast path does, with the payload's size: one call per delivery.
    """

    heartbeat: P | None
    """Sent every heartbeat period while nothing else is; None: this stream has none."""
    heartbeat_direct: bytes

    def tick(self, encoded: Encodings) -> P: ...

    def tick_direct(self, encoded: Encodings) -> tuple[bytes, int]: ...

    def gap(self, symbol: str, epoch: str, reason: str) -> P: ...


class _SseFramer:
    heartbeat: bytes | None = SSE_HEARTBEAT
    heartbeat_direct = chunk(SSE_HEARTBEAT)

    @staticmethod
    def tick(encoded: Encodings) -> bytes:
        return encoded.sse

    @staticmethod
    def tick_direct(encoded: Encodings) -> tuple[bytes, int]:
        return encoded.sse_direct

    @staticmethod
    def gap(symbol: str, epoch: str, reason: str) -> bytes:
        return sse_gap(symbol, epoch, reason)


class _WsFramer:
    heartbeat: str | None = None  # WebSocket keep-alive is the server's ping frames, not ours
    heartbeat_direct = b""

    @staticmethod
    def tick(encoded: Encodings) -> str:
        return encoded.ws

    @staticmethod
    def tick_direct(encoded: Encodings) -> tuple[bytes, int]:
        return encoded.ws_direct

    @staticmethod
    def gap(symbol: str, epoch: str, reason: str) -> str:
        return ws_message("gap", symbol=symbol, epoch=epoch, reason=reason)


SSE: Framer[bytes] = _SseFramer()
WS: Framer[str] = _WsFramer()


def error_body(detail: object) -> bytes:
    """An error's JSON body, `{"detail": ...}`, as FastAPI writes its own."""
    return json.dumps({"detail": detail}, default=str).encode()
