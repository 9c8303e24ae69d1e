"""One typed settings object; `pushpull-server` flags and `PUSHPULL_*` env vars map onto it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from server.feed import OPENING_PRICES

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    symbols: tuple[str, ...] = tuple(OPENING_PRICES)
    tick_rate: float = 2.0
    """Mean ticks per second per symbol (Poisson arrivals); 0 turns the simulator off."""
    seed: int | None = None
    broker: str = "memory"
    workers: int = 1
    """Server processes sharing the listening socket (more than 1 needs a Redis broker)."""
    publish_token: str | None = None
    history: int = 1000
    """Ticks kept per symbol for resume; a cursor older than this gets a gap."""
    webhook_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Networks webhook targets may resolve into, besides loopback."""
    cors: tuple[str, ...] = ()
    heartbeat: float = 15.0
    """Seconds between SSE comment heartbeats."""
    max_connections: int = 0
    """Open connections of any kind before new ones get 503 (a WebSocket 1013); 0 means a margin
    under the process's descriptor limit (`server.gate.default_max_connections`)."""
    max_request_line: int = 8 * 1024
    """Bytes of a request line before 414."""
    max_head: int = 16 * 1024
    """Bytes of a request head (request line and headers) before 431."""
    head_timeout: float = 10.0
    """Seconds a request head may take, from the connection's opening or the request's first byte (408)."""
    body_timeout: float = 10.0
    """Seconds a request body may take after its head before the connection is closed."""
    max_pipelined: int = 64 * 1024
    """Bytes a client may send ahead of an unfinished answer before the connection is closed."""
    max_outgoing: int = 1024 * 1024
    """Bytes waiting for a client that does not read before its connection is aborted."""
    ws_max_lag: int = 0
    """Ticks a WebSocket subscriber may fall behind on a symbol before it is closed with 1008;
    0 means half of `history`, so a client cut off can still resume without loss."""
    sse_retry_ms: int = 2000
    max_webhooks: int = 100
    """Registered webhook endpoints before registration answers 429."""
    webhook_timeout: float = 5.0
    """Seconds one delivery attempt may take."""
    webhook_retry_base: float = 0.5
    """First retry delay in seconds; doubled per attempt (with jitter) up to `webhook_retry_cap`."""
    webhook_retry_cap: float = 60.0
    webhook_queue: int = 1000
    """Ticks waiting per endpoint; past it the oldest is dropped (and counted)."""
    webhook_disable_after: float = 3600.0
    """An endpoint failing for this many seconds without a success is disabled."""
    access_log: bool = False
    fast_path: bool = True
    """Write ticks and short answers straight to uvicorn's sockets when it can (`server.fast_path`)."""
    # Webhook registration and answers (issue 13, items 5 and 8).
    webhook_token: str | None = None
    """Bearer token `POST /api/webhooks` needs; required when `webhook_allow` reaches beyond
    loopback, since registering then makes this server send requests into those networks."""
    webhook_max_response: int = 4096
    """Bytes of a receiver's answer body read; the rest is never read (the connection is dropped)."""

    @property
    def ws_lag_limit(self) -> int:
        return self.ws_max_lag or max(1, self.history // 2)
