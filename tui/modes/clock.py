"""The client's estimate of the server's clock, so delays stay right against a remote server."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable

import httpx

from tui.modes.bounded import fetch
from tui.modes.limits import Limits
from tui.modes.stats import ModeStats

__all__ = ["ServerClock"]

Clock = Callable[[], float]


class ServerClock:
    """`now()` in the server's time: the local clock plus an NTP-style offset.

    The offset comes from `GET /api/time`: the server's answer minus the midpoint of the request's
    send and receive times; of several samples the one with the shortest round trip wins, since
    its midpoint is the least uncertain. A server on loopback shares this machine's clock, so its
    offset is exactly zero: estimating it could only add error (about half a millisecond measured
    here, as large as the push modes' whole delay). `trust_loopback=False` asks it anyway (tests).
    """

    def __init__(self, local: Clock = time.time, offset: float = 0.0, *, trust_loopback: bool = True) -> None:
        self.local = local
        self.offset = offset
        self.trust_loopback = trust_loopback
        self.round_trip: float | None = None

    def now(self) -> float:
        return self.local() + self.offset

    def delay_ms(self, published_at: float) -> float:
        """How long ago, in ms, the server published at `published_at` (its clock).

        Clamped at zero: on one machine the offset's error (up to half a round trip) can make a
        fresh tick look a fraction of a millisecond early, which no tick can be.
        """
        return max(0.0, (self.now() - published_at) * 1000.0)

    async def sync(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        samples: int = 5,
        *,
        stats: ModeStats | None = None,
        limits: Limits | None = None,
    ) -> float:
        """Estimate the offset (nothing to ask of a server on loopback: it is 0). Each sample is
        read within the request deadline and body cap of `limits`; `stats` counts its wire bytes."""
        if self.trust_loopback and is_loopback(base_url):
            self.offset = 0.0
            return self.offset
        limits = limits or Limits()
        stats = stats or ModeStats()
        best: tuple[float, float] | None = None
        for _ in range(samples):
            request = http.build_request("GET", base_url + "/api/time")
            sent = self.local()
            response, body = await fetch(
                http, request, deadline=limits.request_deadline, max_bytes=limits.body_bytes, stats=stats
            )
            received = self.local()
            response.raise_for_status()
            server_ts = read_server_time(response, body)
            round_trip = received - sent
            if best is None or round_trip < best[0]:
                best = (round_trip, server_ts - (sent + received) / 2)
        assert best is not None
        self.round_trip, self.offset = best
        return self.offset


def read_server_time(response: httpx.Response, body: bytes) -> float:
    """`{"ts": float}` from `/api/time`; anything else means this is not a pushpull server."""
    try:
        return float(json.loads(body)["ts"])
    except (ValueError, KeyError, TypeError, RecursionError):  # (deeply nested JSON: RecursionError)
        raise ValueError(f"not a pushpull server: {response.url} answered {body[:60]!r}") from None


def is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def relayed_clock(server_url: str) -> ServerClock:
    """A clock for a client that reaches `server_url` through a relay on this machine (an emulated
    link, `tui.link`): the relay's address is loopback, so the clock trusts loopback only when the
    server itself is on this machine; a remote server's offset is estimated, through the link."""
    return ServerClock(trust_loopback=is_loopback(server_url))
