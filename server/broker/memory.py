"""The default broker: one process, no I/O. Its history lives in the hub's rings."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence

from server.broker import TickSink
from server.schema import Tick, publish_time

__all__ = ["MemoryBroker", "new_epoch"]


def new_epoch() -> str:
    """A short random name for a fresh history (a restart of this process starts a new one)."""
    return secrets.token_hex(4)


class MemoryBroker:
    """Counts `seq` per symbol and hands each tick straight to the hub, synchronously."""

    name = "memory"
    problem = None
    held: frozenset[str] = frozenset(("feed", "webhooks"))
    """One process holds every lease."""

    def __init__(self) -> None:
        self._epoch = new_epoch()
        self._seq: dict[str, int] = {}
        self._sink: TickSink | None = None

    @property
    def epoch(self) -> str:
        return self._epoch

    async def start(self, sink: TickSink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        self._sink = None

    async def ready(self) -> None:
        return None

    async def publish(self, items: Sequence[tuple[str, float]], *, lease: str | None = None) -> list[Tick]:
        now = publish_time()
        ticks: list[Tick] = []
        for symbol, price in items:
            seq = self._seq.get(symbol, 0) + 1
            self._seq[symbol] = seq
            tick = Tick(symbol=symbol, seq=seq, price=price, ts=now, epoch=self._epoch)
            ticks.append(tick)
            if self._sink is not None:
                self._sink(tick)
        return ticks

    async def open(self, items: Sequence[tuple[str, float]]) -> list[Tick]:
        return await self.publish([(symbol, price) for symbol, price in items if symbol not in self._seq])

    async def exclusive(self, lease: str, work: Callable[[], Awaitable[None]]) -> None:
        await work()
