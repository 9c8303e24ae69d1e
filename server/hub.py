"""The per-process fan-out: a ring of pre-encoded ticks per symbol, and the streams reading it.

Why this shape: a tick is encoded once per transport when it arrives, and every subscriber is
handed the same bytes. Subscribers keep no queue of their own; each keeps a cursor (a `seq`)
into its symbol's ring, and sleeps on a future that a new tick resolves. A slow subscriber's
"queue" is just the distance between its cursor and the head, bounded by the ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from server.outlets import chunk, ws_frame
from server.schema import Tick

__all__ = ["Entry", "Hub", "Listener", "Topic", "UnknownSymbol"]

logger = logging.getLogger("pushpull.hub")


class UnknownSymbol(KeyError):
    """Raised for a symbol the server does not publish."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One tick with its encodings, shared by every subscriber."""

    tick: Tick
    json: bytes
    """The tick as compact JSON (poll, long poll, webhooks)."""
    sse: bytes
    """A complete `text/event-stream` event with `id: <epoch>:<seq>`."""
    ws: str
    """A `{"type": "tick", ...}` WebSocket text message."""
    sse_chunk: bytes
    """`sse` framed as one HTTP/1.1 chunk, for outlets writing straight to the socket."""
    ws_frame: bytes
    """`ws` framed as one WebSocket text frame, likewise."""

    @property
    def seq(self) -> int:
        return self.tick.seq

    @classmethod
    def encode(cls, tick: Tick) -> Entry:
        body = tick.to_json()
        sse = b"id: %s:%d\nevent: tick\ndata: %s\n\n" % (tick.epoch.encode(), tick.seq, body)
        ws = b'{"type":"tick",' + body[1:]
        return cls(tick=tick, json=body, sse=sse, ws=ws.decode(), sse_chunk=chunk(sse), ws_frame=ws_frame(ws))


class Listener:
    """Something that follows topics: a stream, a socket, a held long poll.

    The hub calls `on_entry` for every tick of a followed topic and `on_beat` every heartbeat
    period, synchronously. By default both wake the listener's task, which then reads the ring
    from its cursor; a listener that can write without its task (see `server.outlets`) overrides
    them.
    """

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def on_entry(self, entry: Entry) -> None:
        self.wake()

    def on_beat(self) -> None:
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep(self, timeout: float | None = None, also: deque[asyncio.Future[Any]] | None = None) -> None:
        """Wait for `wake()` (or the timeout). Callers re-check their topics afterwards.

        `also`: a waiter list (an `asyncio.Event`'s) whose event should end the sleep too.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else loop.call_later(timeout, _release, waiter)
        if also is not None:
            also.append(waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
            if also is not None:
                with contextlib.suppress(ValueError):
                    also.remove(waiter)


def _release(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Topic:
    """One symbol: the last `capacity` ticks and the listeners to wake when one arrives."""

    def __init__(self, symbol: str, capacity: int) -> None:
        self.symbol = symbol
        self.ring: deque[Entry] = deque(maxlen=capacity)
        self.listeners: set[Listener] = set()

    @property
    def latest(self) -> Entry | None:
        return self.ring[-1] if self.ring else None

    @property
    def head_seq(self) -> int:
        return self.ring[-1].seq if self.ring else 0

    def append(self, entry: Entry) -> None:
        self.ring.append(entry)
        for listener in self.listeners:
            try:
                listener.on_entry(entry)
            except Exception:  # one broken subscriber must not stop the others, or the feed
                logger.exception("a %s failed to take tick %s:%d", type(listener).__name__, self.symbol, entry.seq)

    def after(self, seq: int) -> list[Entry] | None:
        """Every entry newer than `seq`, oldest first; None when the ring cannot say (a gap).

        A gap is a cursor older than the ring holds, or ahead of its head.
        """
        ring = self.ring
        if not ring:
            return None if seq > 0 else []
        head = ring[-1].seq
        missing = head - seq
        if missing == 0:
            return []
        if missing < 0 or missing > len(ring):
            return None
        if missing == 1:
            return [ring[-1]]
        return [ring[i] for i in range(-missing, 0)]

    def resume(self, seq: int) -> tuple[list[Entry], bool]:
        """What a reader at `seq` gets now: (entries, gap). Every entry newer than `seq`, or, when
        the ring cannot cover that (see `after`), just the latest entry with `gap` set."""
        entries = self.after(seq)
        if entries is not None:
            return entries, False
        latest = self.latest
        return ([latest] if latest is not None else []), True

    def clear(self) -> None:
        self.ring.clear()


class Hub:
    """All topics of this process, the current epoch, and the lifecycle of its streams."""

    def __init__(self, symbols: Iterable[str], capacity: int) -> None:
        self.topics: dict[str, Topic] = {s: Topic(s, capacity) for s in symbols}
        self.epoch = ""
        self.closing = False
        self.heartbeats: set[Listener] = set()
        """Listeners told of every heartbeat period (SSE streams send a comment)."""

    def topic(self, symbol: str) -> Topic:
        try:
            return self.topics[symbol]
        except KeyError:
            raise UnknownSymbol(symbol) from None

    def deliver(self, tick: Tick) -> Entry:
        """Take a tick from the broker: encode it once, store it, wake its listeners."""
        if tick.epoch != self.epoch:
            self.reset_epoch(tick.epoch)
        entry = Entry.encode(tick)
        self.topic(tick.symbol).append(entry)
        return entry

    def reset_epoch(self, epoch: str) -> None:
        """The history that `seq` counts in was lost: forget it; cursors now resolve to gaps."""
        self.epoch = epoch
        for topic in self.topics.values():
            topic.clear()

    def beat(self) -> None:
        for listener in self.heartbeats:
            try:
                listener.on_beat()
            except Exception:
                logger.exception("a %s failed to take a heartbeat", type(listener).__name__)

    def close(self) -> None:
        """Server shutdown: every stream and held request finishes now."""
        self.closing = True
        for topic in self.topics.values():
            for listener in topic.listeners:
                listener.wake()
        for listener in self.heartbeats:
            listener.wake()
