"""The app's own subscriber: ground truth that no pane counts.

It sees every tick of the symbol (over one WebSocket, on its own thread like a pane's client) and
keeps what the rest of the screen measures against: when each tick was published (the timelines'
top row), the session's quote (the header), and how fast ticks come (theory's λ when the server
does not say).
"""

from __future__ import annotations

import time
from collections import deque

from server.schema import Tick
from tui.modes import ModeClient, make_client
from tui.quote import SessionQuote
from tui.runner import ClientThread
from tui.timeline import Published

__all__ = ["ReferenceFeed"]

KEPT = 2000
"""Published ticks kept (more than any timeline shows)."""
RATE_WINDOW = 60.0
"""Seconds over which the tick rate is measured."""


class ReferenceFeed:
    """`ReferenceFeed(url, "TCS").start()`; read `quote`, `published`, `tick_rate()`; `stop()`."""

    def __init__(self, server_url: str, symbol: str, **client_options: object) -> None:
        self.server_url = server_url
        self.client_options = client_options
        self.quote = SessionQuote(symbol)
        self.published: deque[Published] = deque(maxlen=KEPT)
        """Every tick seen, at its publish time on the local clock, oldest first."""
        self.client = self._new_client(symbol)
        self.runner: ClientThread | None = None

    @property
    def symbol(self) -> str:
        return self.quote.symbol

    def _new_client(self, symbol: str) -> ModeClient:
        return make_client("ws", self.server_url, symbol, on_tick=self._take, **self.client_options)

    def _take(self, tick: Tick) -> None:
        """On the client's thread, for every tick (a late one of the previous symbol is dropped)."""
        if tick.symbol != self.quote.symbol:
            return
        self.quote.take(tick, at=self.client.clock.local())
        self.published.append(Published(tick.ts - self.client.clock.offset, tick.seq))

    def start(self) -> None:
        self.runner = ClientThread(self.client)
        self.runner.start()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def switch(self, symbol: str) -> None:
        """Watch another symbol: a fresh client, a fresh session."""
        self.stop()
        self.quote.reset(symbol)
        self.published.clear()
        self.client = self._new_client(symbol)
        self.start()

    def tick_rate(self, now: float | None = None) -> float | None:
        """Ticks per second over the last minute (None until a few have come)."""
        now = time.time() if now is None else now
        recent = [p.at for p in list(self.published) if now - p.at <= RATE_WINDOW]
        if len(recent) < 5:
            return None
        span = now - recent[0]
        return (len(recent) - 1) / span if span > 0 else None
