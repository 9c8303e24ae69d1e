"""Counters the transports bump and `GET /api/stats` reads. Plain ints: cheap on the hot path."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ServerStats", "TransportStats"]


@dataclass(slots=True)
class TransportStats:
    open_connections: int = 0
    """Streams, sockets or held requests open right now."""
    requests: int = 0
    """HTTP requests served, or streams / sockets opened."""
    empty_responses: int = 0
    """Answers that carried no tick: 304 for poll, 204 for long poll."""
    messages_sent: int = 0
    """Ticks delivered (one per subscriber per tick)."""
    bytes_sent: int = 0
    """Body bytes written: tick payloads, envelopes, heartbeats."""
    rejected: int = 0
    """Requests or sockets refused for bad input (a full server is the gate's: `/api/stats` connections)."""
    evicted: int = 0
    """Subscribers cut off for falling too far behind (WebSocket, 1008)."""
    direct_connections: int = 0
    """Streams opened whose ticks the hub may write straight to the socket (`server.fast_path`)."""
    direct_writes: int = 0
    """Ticks, heartbeats and whole responses written straight to a socket by the fast path."""


@dataclass(slots=True)
class ServerStats:
    ticks_published: int = 0
    poll: TransportStats = field(default_factory=TransportStats)
    longpoll: TransportStats = field(default_factory=TransportStats)
    sse: TransportStats = field(default_factory=TransportStats)
    ws: TransportStats = field(default_factory=TransportStats)

    def transports(self) -> dict[str, dict[str, int]]:
        return {name: asdict(getattr(self, name)) for name in ("poll", "longpoll", "sse", "ws")}
