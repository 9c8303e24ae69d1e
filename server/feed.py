"""A seeded NSE-like price simulator: a random walk per symbol, ticks arriving as a Poisson process.

Arrivals are irregular on purpose: a poller that asks on a fixed beat sometimes finds nothing
new and sometimes finds it has skipped ticks, which is the cost the app makes visible.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence

from server.broker import BrokerUnavailable, LeaseLost
from server.schema import round_to_tick

__all__ = ["OPENING_PRICES", "PriceFeed"]

logger = logging.getLogger("pushpull.feed")

OPENING_PRICES: dict[str, float] = {
    "RELIANCE": 1312.45,
    "TCS": 3425.80,
    "INFY": 1587.35,
    "HDFCBANK": 1968.10,
    "ICICIBANK": 1421.60,
    "SBIN": 812.55,
}
"""Realistic opening prices; a symbol not listed opens at a seeded price between 100 and 3000."""

VOLATILITY_PER_TICK = 0.0004
"""Standard deviation of one tick's log-return: a few paise to a rupee on these prices."""

Publisher = Callable[[Sequence[tuple[str, float]]], Awaitable[object]]


class PriceFeed:
    """Generates ticks for `symbols` at `rate` per symbol per second, reproducibly from `seed`."""

    def __init__(self, symbols: Sequence[str], rate: float, seed: int | None) -> None:
        self.rate = rate
        self._random = random.Random(seed)
        self.prices: dict[str, float] = {
            s: OPENING_PRICES.get(s) or round_to_tick(self._random.uniform(100, 3000)) for s in symbols
        }

    def opening(self) -> list[tuple[str, float]]:
        return list(self.prices.items())

    def continue_from(self, prices: dict[str, float]) -> None:
        """Walk on from these prices (the last published), not from the opening: a process that
        takes the feed over from another must not jump the price back."""
        self.prices.update((s, p) for s, p in prices.items() if s in self.prices)

    def step(self, symbol: str) -> float:
        """Move one symbol's price by one random-walk step; always at least one tick above zero."""
        moved = self.prices[symbol] * math.exp(self._random.gauss(0.0, VOLATILITY_PER_TICK))
        price = round_to_tick(moved)
        self.prices[symbol] = price
        return price

    async def run(self, publish: Publisher) -> None:
        """Publish forever: every tick whose arrival time has come, in one batch per wake-up."""
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        arrivals = [(start + self._random.expovariate(self.rate), s) for s in self.prices]
        heapq.heapify(arrivals)
        while True:
            due_at = arrivals[0][0]
            delay = due_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            batch: list[tuple[str, float]] = []
            while arrivals and arrivals[0][0] <= now:
                at, symbol = heapq.heappop(arrivals)
                batch.append((symbol, self.step(symbol)))
                heapq.heappush(arrivals, (at + self._random.expovariate(self.rate), symbol))
            try:
                await publish(batch)
            except BrokerUnavailable:  # the broker warns once per outage; these ticks are never published
                pass
            except LeaseLost:  # another process runs the feed now
                return
            except Exception:  # a bad moment (a broker hiccup) must not end the simulator for good
                logger.exception("the feed could not publish %d tick(s); going on", len(batch))
