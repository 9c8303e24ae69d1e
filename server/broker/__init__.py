"""Brokers order ticks (assign `seq`) and carry them to every server process's hub.

The in-process broker is the default; a Redis broker (several server processes sharing one
Redis) implements the same small interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from server.schema import Tick

__all__ = ["Broker", "TickSink", "make_broker"]

TickSink = Callable[[Tick], object]
"""Called once per tick, in `seq` order per symbol, on the event loop (the hub's `deliver`)."""


class Broker(Protocol):
    name: str
    """What `/api/stats` reports: "memory" or a redis URL without credentials."""

    @property
    def epoch(self) -> str:
        """Names the history that `seq` counts in; changes only when that history is lost."""
        ...

    async def start(self, sink: TickSink) -> None:
        """Connect, and from now on hand every tick (from any process) to `sink`."""
        ...

    async def stop(self) -> None: ...

    async def publish(self, items: Sequence[tuple[str, float]]) -> list[Tick]:
        """Stamp each (symbol, price) with the next `seq` and the publish time, and distribute it."""
        ...

    async def history(self, symbol: str, limit: int) -> list[Tick]:
        """Up to `limit` most recent ticks of `symbol`, oldest first (to fill a new hub)."""
        ...


def make_broker(url: str) -> Broker:
    """Pick the broker named by `--broker`."""
    if url == "memory":
        from server.broker.memory import MemoryBroker

        return MemoryBroker()
    raise ValueError(f"unsupported broker {url!r}: this version supports only 'memory'")
