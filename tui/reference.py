"""The app's own subscriber: ground truth that no pane counts, for the symbol the panes watch.

A view of the market feed (`tui.market`: one WebSocket for every symbol) narrowed to one symbol:
when each of its ticks was published (the timelines' top row), its session's quote (the header),
and how fast its ticks come (theory's λ when the server does not say). Switching symbol opens
nothing new: the feed already follows every symbol, so the new one's session and timeline are
there at once, and the header's change agrees with the watchlist's.
"""

from __future__ import annotations

import time
from collections import deque

from tui.market import MarketFeed
from tui.modes import Backoff, ServerClock
from tui.quote import QuoteState
from tui.runner import ClientThread
from tui.timeline import Published

__all__ = ["ReferenceFeed"]


class ReferenceFeed:
    """`ReferenceFeed(url, "TCS").start()`; read `quote`, `published`, `tick_rate()`; `stop()`."""

    def __init__(
        self,
        server_url: str,
        symbol: str,
        *,
        clock: ServerClock | None = None,
        backoff: Backoff | None = None,
        seed: int | None = None,
    ) -> None:
        self.market = MarketFeed(server_url, clock=clock, backoff=backoff, seed=seed)
        self.symbol = symbol
        self.runner: ClientThread | None = None

    @property
    def quote(self) -> QuoteState:
        """The watched symbol's session so far (one snapshot)."""
        return self.market.quote(self.symbol)

    @property
    def published(self) -> deque[Published]:
        """The watched symbol's ticks at their publish time, oldest first (live: copy it)."""
        return self.market.published(self.symbol)

    def start(self) -> None:
        if self.runner is None:
            self.runner = ClientThread(self.market)
            self.runner.start()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def switch(self, symbol: str) -> None:
        """Watch another symbol (the feed follows every one already)."""
        self.symbol = symbol

    def tick_rate(self, now: float | None = None) -> float | None:
        """The watched symbol's ticks per second over the last minute (None until a few have come)."""
        return self.market.tick_rate(self.symbol, time.time() if now is None else now)
