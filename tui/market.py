"""Every symbol the server publishes, over one WebSocket: the app's own view of the market.

No pane counts it. It keeps, per symbol, what the rest of the screen measures against: the
session's quote (first price, high, low, last tick), the recent prices (the watchlist's
sparkline) and when each tick was published (the timelines' top row, theory's tick rate). Price
alerts listen to it, so an alert fires for a symbol no pane watches.

It runs on its own thread and event loop, like a pane's client (`tui.runner`), so a tick is taken
when it arrives, not when the UI is free. Readers on the UI thread get snapshots: each symbol's
quote is one frozen value replaced whole, and the deques are copied before use.

Example:

    market = MarketFeed("http://127.0.0.1:8000")
    market.listeners.append(lambda tick, at: print(tick.symbol, tick.price))
    ClientThread(market).start()
    ...
    market.quote("TCS").last
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosedOK, WebSocketException

from server.schema import Tick
from tui.modes import Backoff, ConnectionState, LimitExceeded, Limits, ModeError, ModeStats, ServerClock
from tui.modes.base import describe
from tui.modes.bounded import fetch
from tui.modes.ws import open_socket, parse_frame
from tui.quote import QuoteState, SessionQuote
from tui.timeline import Published

__all__ = ["MarketFeed", "MarketListener"]

log = logging.getLogger("pushpull.market")

MarketListener = Callable[[Tick, float], None]
"""Called on the feed's thread for every new tick, with the local time it arrived."""

KEPT = 2000
"""Published ticks kept per symbol (more than any timeline shows)."""
RECENT_PRICES = 60
"""Prices kept per symbol for a sparkline."""
RATE_WINDOW = 60.0
"""Seconds over which a symbol's tick rate is measured."""
RETRIED = (httpx.HTTPError, OSError, WebSocketException, ModeError, LimitExceeded, ValidationError, ValueError)
"""A network failure or an answer we cannot use: back off and connect again."""


class MarketFeed:
    """One WebSocket subscribed to every symbol, resumed from per-symbol cursors after a drop."""

    mode: ClassVar[str] = "market"
    """For the thread's name (`tui.runner`)."""

    def __init__(
        self,
        server_url: str,
        *,
        clock: ServerClock | None = None,
        backoff: Backoff | None = None,
        seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.clock = clock or ServerClock()
        self.backoff = backoff or Backoff()
        self.limits = limits or Limits()
        self.state = ConnectionState.CONNECTING
        self.error: str | None = None
        self.symbols: list[str] = []
        """Every symbol the server publishes, in its order (empty until the first answer)."""
        self.listeners: list[MarketListener] = []
        self.stats = ModeStats()
        """The bytes of its clock sync and symbol list (its socket's frames are not counted: no
        pane shows the feed's cost, it is the app's, not a mode's)."""
        self._quotes: dict[str, SessionQuote] = {}
        self._published: dict[str, deque[Published]] = {}
        self._prices: dict[str, deque[float]] = {}
        self._cursors: dict[str, int] = {}
        self._epoch: str | None = None
        self._rng = random.Random(seed)

    # -- what readers use (any thread) -----------------------------------------------------------

    def quote(self, symbol: str) -> QuoteState:
        """The symbol's session so far: one consistent snapshot (empty before its first tick)."""
        session = self._quotes.get(symbol)
        return session.state if session is not None else QuoteState(symbol)

    def published(self, symbol: str) -> deque[Published]:
        """The symbol's ticks at their publish time on the local clock, oldest first (live: copy it)."""
        kept = self._published.get(symbol)
        if kept is None:
            kept = self._published[symbol] = deque(maxlen=KEPT)
        return kept

    def recent_prices(self, symbol: str) -> list[float]:
        """The symbol's last prices, oldest first (a copy)."""
        return list(self._prices.get(symbol, ()))

    def tick_rate(self, symbol: str, now: float) -> float | None:
        """The symbol's ticks per second over the last minute (None until a few have come)."""
        recent = [p.at for p in list(self.published(symbol)) if now - p.at <= RATE_WINDOW]
        if len(recent) < 5:
            return None
        span = now - recent[0]
        return (len(recent) - 1) / span if span > 0 else None

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Receive until cancelled, reconnecting with backoff (jittered) after any failure."""
        failures = 0
        try:
            while True:
                try:
                    await self._session()
                    self.error = "the server closed the connection"
                except RETRIED as exc:
                    self.error = describe(exc)
                was_live = self.state is ConnectionState.LIVE
                failures = 1 if was_live else failures + 1
                if failures >= self.backoff.unreachable_after:
                    self.state = ConnectionState.UNREACHABLE
                else:
                    self.state = ConnectionState.RECONNECTING
                await asyncio.sleep(self.backoff.delay(failures - 1, self._rng))
        finally:
            self.state = ConnectionState.STOPPED

    async def _session(self) -> None:
        """One connection's life: the clock, the symbols, then every tick until it ends."""
        async with httpx.AsyncClient(timeout=self.limits.request_deadline) as http:
            await self.clock.sync(http, self.server_url, stats=self.stats, limits=self.limits)
            if not self.symbols:
                self.symbols = await self._list_symbols(http)
        async with open_socket(self.server_url, self.limits) as ws:
            await ws.send(json.dumps(self._subscribe_op()), text=True)
            while True:
                try:
                    message = await ws.recv(decode=False)
                except ConnectionClosedOK:
                    return
                self._take_frame(message)

    async def _list_symbols(self, http: httpx.AsyncClient) -> list[str]:
        request = http.build_request("GET", self.server_url + "/api/symbols")
        response, body = await fetch(
            http, request, deadline=self.limits.request_deadline, max_bytes=self.limits.body_bytes, stats=self.stats
        )
        response.raise_for_status()
        listed = json.loads(body)
        if not isinstance(listed, list):
            raise ModeError("/api/symbols did not answer a list")
        return [Tick.model_validate(item).symbol for item in listed]

    def _subscribe_op(self) -> dict[str, Any]:
        """Every symbol; from its cursor where we have one (the server replays what we missed)."""
        op: dict[str, Any] = {"op": "subscribe", "symbols": list(self.symbols)}
        after = {symbol: seq for symbol, seq in self._cursors.items() if symbol in self.symbols}
        if after and self._epoch is not None:
            op["after"] = after
            op["epoch"] = self._epoch
        return op

    def _take_frame(self, message: bytes) -> None:
        kind, frame = parse_frame(message)
        if kind == "tick":
            self.take(Tick.model_validate(frame), self.clock.local())
        elif kind == "subscribed":
            self.state = ConnectionState.LIVE
            self.error = None
        elif kind == "gap":
            self._cursors.pop(str(frame.get("symbol")), None)  # the latest tick follows
        elif kind == "error":
            raise ModeError(str(frame.get("detail", "the server refused the subscription")))

    def take(self, tick: Tick, at: float) -> None:
        """One tick, arrived at local time `at`: a repeat (a resume's overlap) is dropped."""
        if tick.epoch != self._epoch:
            self._epoch = tick.epoch
            self._cursors.clear()  # a new history: old cursors mean nothing in it
        cursor = self._cursors.get(tick.symbol)
        if cursor is not None and tick.seq <= cursor:
            return
        self._cursors[tick.symbol] = tick.seq
        session = self._quotes.get(tick.symbol)
        if session is None:
            session = self._quotes[tick.symbol] = SessionQuote(tick.symbol)
        session.take(tick, at=at)
        self.published(tick.symbol).append(Published(tick.ts - self.clock.offset, tick.seq))
        prices = self._prices.get(tick.symbol)
        if prices is None:
            prices = self._prices[tick.symbol] = deque(maxlen=RECENT_PRICES)
        prices.append(tick.price)
        for listener in list(self.listeners):
            try:
                listener(tick, at)
            except Exception:  # a listener's bug must not stop the market
                log.exception("a market listener failed on %s", tick.symbol)
