"""Brokers order ticks (assign `seq`) and carry them to every server process's hub.

The in-process broker is the default; the Redis broker (several server processes sharing one
Redis, `server.broker.redis`) implements the same small interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from server.schema import Tick

if TYPE_CHECKING:
    from server.settings import Settings

__all__ = ["Broker", "BrokerUnavailable", "LeaseLost", "TickSink", "make_broker", "public_url"]

TickSink = Callable[[Tick], object]
"""Called once per tick, in `seq` order per symbol, on the event loop (the hub's `deliver`)."""


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached now (Redis down): publishing answers 503 until it is back."""


class LeaseLost(RuntimeError):
    """A publish made for a lease this process no longer holds (another process took over)."""


class Broker(Protocol):
    name: str
    """What `/api/stats` reports: "memory", or the Redis URL without credentials."""

    @property
    def epoch(self) -> str:
        """Names the history that `seq` counts in; changes only when that history is lost."""
        ...

    @property
    def held(self) -> frozenset[str]:
        """The leases this process holds now ("feed", "webhooks")."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the broker cannot serve now (for `/healthz`), or None when it can."""
        ...

    async def start(self, sink: TickSink) -> None:
        """Connect, hand the history it holds to `sink`, and from now on every new tick (from any
        process), in order per symbol."""
        ...

    async def stop(self) -> None: ...

    async def ready(self) -> None:
        """Returns once the history is loaded (at once in memory; with Redis, when it first answers)."""
        ...

    async def publish(self, items: Sequence[tuple[str, float]], *, lease: str | None = None) -> list[Tick]:
        """Stamp each (symbol, price) with the next `seq` and the publish time, and distribute it;
        the ticks have reached this process's sink when it returns. With `lease`, only while this
        process holds that lease (else `LeaseLost`). `BrokerUnavailable` when it cannot."""
        ...

    async def open(self, items: Sequence[tuple[str, float]]) -> list[Tick]:
        """Publish each symbol's opening tick unless it has ever had one (whoever asks first wins)."""
        ...

    async def exclusive(self, lease: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` whenever this process holds `lease`, and only then; forever.

        Exactly one process holds a lease at a time (the feed, the webhook sender); when the holder
        dies another takes over within seconds. The memory broker simply runs `work`."""
        ...


def public_url(url: str) -> str:
    """The URL with any user name and password taken out (the query too: redis-py reads a
    `?password=` there): what logs, errors and `/api/stats` show."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None and not parts.query:
        return url
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def make_broker(settings: Settings) -> Broker:
    """Pick the broker named by `--broker`."""
    if settings.broker == "memory":
        from server.broker.memory import MemoryBroker

        return MemoryBroker()
    from server.broker.redis import RedisBroker

    return RedisBroker(settings.broker, settings.symbols, settings.history)
