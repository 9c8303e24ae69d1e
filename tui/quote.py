"""One symbol's session so far: first price, high, low and the last tick, fed by a reference subscriber.

The subscriber calls `take()` on its own thread for every tick; the UI reads at its own pace. Each
tick replaces one frozen `QuoteState` in a single assignment, so a reader never sees a high from one
tick and a last price from another.

Example:

    quote = SessionQuote("RELIANCE")
    quote.take(tick)              # on the subscriber's thread
    state = quote.state           # on the UI thread: one consistent snapshot
    print(state.last, state.high, state.low)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from server.schema import Tick

__all__ = ["QuoteState", "SessionQuote"]


@dataclass(frozen=True, slots=True)
class QuoteState:
    """What is known of one symbol's session at one moment."""

    symbol: str
    first_price: float | None = None
    """The session's first tick's price: change and % are measured from it."""
    high: float | None = None
    low: float | None = None
    last: Tick | None = None
    last_at: float | None = None
    """Local time the last tick arrived (the reference subscriber's clock); None: use its `ts`."""

    @property
    def last_time(self) -> float | None:
        """When the last tick came, in Unix seconds: when it arrived if known, else its `ts`."""
        if self.last is None:
            return None
        return self.last_at if self.last_at is not None else self.last.ts

    @property
    def change(self) -> float | None:
        if self.last is None or self.first_price is None:
            return None
        return self.last.price - self.first_price

    @property
    def change_fraction(self) -> float | None:
        change = self.change
        if change is None or not self.first_price:
            return None
        return change / self.first_price


class SessionQuote:
    """The session of one symbol, taken tick by tick; `reset()` starts a new one for another symbol."""

    def __init__(self, symbol: str) -> None:
        self.state = QuoteState(symbol)
        """Replaced whole on every tick: read it once and use that snapshot."""
        self._writing = threading.Lock()  # take() and reset() may come from different threads

    @property
    def symbol(self) -> str:
        return self.state.symbol

    @property
    def first_price(self) -> float | None:
        return self.state.first_price

    @property
    def high(self) -> float | None:
        return self.state.high

    @property
    def low(self) -> float | None:
        return self.state.low

    @property
    def last(self) -> Tick | None:
        return self.state.last

    def take(self, tick: Tick, at: float | None = None) -> None:
        """Take one tick (arrived at local time `at`, if known); another symbol's (a late one
        after `reset()`) or a repeated one is ignored."""
        with self._writing:
            state = self.state
            if tick.symbol != state.symbol:
                return
            last = state.last
            price = tick.price
            if last is None or state.high is None or state.low is None:
                self.state = QuoteState(state.symbol, price, price, price, tick, at)
                return
            if tick.epoch == last.epoch and tick.seq <= last.seq:
                return
            high, low = max(state.high, price), min(state.low, price)
            self.state = QuoteState(state.symbol, state.first_price, high, low, tick, at)

    def reset(self, symbol: str) -> None:
        """Start a new session, for `symbol`, with nothing seen yet."""
        with self._writing:
            self.state = QuoteState(symbol)
