"""The per-process fan-out: a ring of pre-encoded ticks per symbol, and the listeners it tells.

Why this shape: a tick is encoded once per transport when it arrives (`server.wire`), and every
subscriber is handed the same bytes. Subscribers keep no queue of their own; each keeps a cursor
(a `seq`) into its symbol's ring. A slow subscriber's "queue" is just the distance between its
cursor and the head, bounded by the ring.

The hub is the only way in and out of a topic: `Hub.subscribe` (ticks of a symbol) and
`Hub.follow_heartbeats` return a `Subscription`, which `cancel()` or a `with` block ends.

Delivery invariant: the hub tells listeners synchronously, one after another, in no particular order
(a set's; in subscription order, the p99 at 1,000 SSE subscribers of the bench's two client
processes was a third higher: docs/benchmarks.md, section 4). A listener may subscribe or cancel
(itself or another) from inside `on_entry` or `on_beat`: the delivery under way still goes to the
listeners as they were when it began, so a listener cancelled meanwhile may be told once more, and
one added meanwhile hears from the next tick on (it reads anything older from the ring, by its
cursor). An exception in a listener is logged and does not stop the others.

Slicing: a tick is stored and told in one go, but the hub stores and tells at most about
`SLICE` listener-deliveries per turn of the event loop. Past that, ticks wait in the hub's inbox,
in arrival order, and a continuation scheduled with `call_soon` takes the next slice, so a big
batch (1,500 ticks to 500 subscribers: 750,000 deliveries) lets other work run between slices
instead of holding the loop for seconds. A tick that arrives while others wait queues behind
them, so every listener still hears every tick in order, and the ring never runs ahead of what
was told: a listener that joins mid-batch reads the ring up to the last tick told and hears the
rest. The usual tick (one, to a thousand subscribers) fits one slice and is told at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from server.schema import Tick
from server.wire import Encodings

__all__ = ["SLICE", "Entry", "Hub", "Listener", "Subscription", "Topic", "UnknownSymbol"]

logger = logging.getLogger("pushpull.hub")

SLICE = 2000
"""Listener deliveries (a tick counts one more, for storing it) per turn of the event loop before
the hub lets other work run: about 5-15 ms of SSE or WebSocket writes. A single tick is never
split, however many listen."""


class UnknownSymbol(KeyError):
    """Raised for a symbol the server does not publish."""


@dataclass(frozen=True, slots=True)
class Entry(Encodings):
    """One tick with its encodings, shared by every subscriber."""

    tick: Tick
    symbol: str
    seq: int
    """The tick's own, kept beside it: read once per subscriber per tick, so a plain slot."""

    @classmethod
    def encode(cls, tick: Tick) -> Entry:
        return cls.of(tick.to_json(), tick.epoch, tick.seq, tick=tick, symbol=tick.symbol, seq=tick.seq)


class Listener:
    """Something that follows topics: a stream, a socket, a held long poll, a webhook endpoint.

    The hub calls `on_entry` for every tick of a followed topic and `on_beat` every heartbeat
    period, synchronously (see the module's delivery invariant). By default both wake the
    listener's task, which then reads the ring from its cursor; a listener that can write without
    its task (`server.stream`) overrides them.
    """

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def on_entry(self, entry: Entry) -> None:
        self.wake()

    def on_beat(self) -> None:
        self.wake()

    def on_new_epoch(self) -> None:
        """The history was lost (`Hub.reset_epoch`): every cursor now counts in a gone history."""
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


class _Audience:
    """The listeners of one topic (or of the heartbeats), safe to change while being told.

    Delivery walks a tuple of the members, rebuilt at the first delivery after a change: that copy
    is what makes changing the audience from inside a delivery safe, and building it lazily keeps
    a change O(1) (a thousand long polls re-subscribe between two ticks; the tuple is built once).
    """

    __slots__ = ("_members", "_snapshot")

    def __init__(self) -> None:
        self._members: set[Listener] = set()
        self._snapshot: tuple[Listener, ...] | None = ()

    def __len__(self) -> int:
        return len(self._members)

    def add(self, listener: Listener) -> None:
        if listener not in self._members:
            self._members.add(listener)
            self._snapshot = None

    def discard(self, listener: Listener) -> None:
        if listener in self._members:
            self._members.remove(listener)
            self._snapshot = None

    def members(self) -> tuple[Listener, ...]:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = tuple(self._members)
        return snapshot


class Subscription:
    """A listener's place in a topic or in the heartbeats. `cancel()` (or leaving a `with` block)
    takes it out; cancelling twice is harmless."""

    __slots__ = ("_audience", "listener")

    def __init__(self, audience: _Audience, listener: Listener) -> None:
        self._audience: _Audience | None = audience
        self.listener = listener
        audience.add(listener)

    def cancel(self) -> None:
        audience, self._audience = self._audience, None
        if audience is not None:
            audience.discard(self.listener)

    @property
    def active(self) -> bool:
        return self._audience is not None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.cancel()


class Topic:
    """One symbol: the last `capacity` ticks and the listeners to tell when one arrives."""

    __slots__ = ("_audience", "ring", "symbol")

    def __init__(self, symbol: str, capacity: int) -> None:
        self.symbol = symbol
        self.ring: deque[Entry] = deque(maxlen=capacity)
        self._audience = _Audience()

    @property
    def latest(self) -> Entry | None:
        return self.ring[-1] if self.ring else None

    @property
    def head_seq(self) -> int:
        return self.ring[-1].seq if self.ring else 0

    @property
    def listener_count(self) -> int:
        return len(self._audience)

    def append(self, entry: Entry) -> int:
        """Store the entry and tell every listener; how many were told."""
        self.ring.append(entry)
        members = self._audience.members()
        for listener in members:
            try:
                listener.on_entry(entry)
            except Exception:  # one broken subscriber must not stop the others, or the feed
                logger.exception("a %s failed to take tick %s:%d", type(listener).__name__, self.symbol, entry.seq)
        return len(members)

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
    """All topics of this process, the current epoch, and who listens to what."""

    def __init__(self, symbols: Iterable[str], capacity: int, slice_size: int = SLICE) -> None:
        self.topics: dict[str, Topic] = {s: Topic(s, capacity) for s in symbols}
        self.epoch = ""
        self.closing = False
        self._beats = _Audience()
        """Listeners told of every heartbeat period (SSE streams send a comment)."""
        self.slice_size = slice_size
        self._inbox: deque[Tick] = deque()
        """Ticks taken but not yet stored and told, oldest first (see the module's slicing)."""
        self._spent = 0
        """Deliveries made in this turn of the event loop."""
        self.continuations = 0
        """Slices taken by a scheduled continuation rather than by `deliver` itself."""

    def topic(self, symbol: str) -> Topic:
        try:
            return self.topics[symbol]
        except KeyError:
            raise UnknownSymbol(symbol) from None

    def subscribe(self, symbol: str, listener: Listener) -> Subscription:
        """Tell `listener` of every tick of `symbol` from now on, until the subscription ends."""
        return Subscription(self.topic(symbol)._audience, listener)

    def follow_heartbeats(self, listener: Listener) -> Subscription:
        """Tell `listener` of every heartbeat period, until the subscription ends."""
        return Subscription(self._beats, listener)

    def deliver(self, tick: Tick) -> None:
        """Take a tick from the broker: encode it once, store it, tell its listeners; now if this
        turn's slice has room and no tick waits, else after those waiting (in a later turn)."""
        if self._inbox or self._spent >= self.slice_size:
            self._inbox.append(tick)
        else:
            self._take(tick)

    @property
    def waiting(self) -> int:
        """Ticks taken but not yet stored and told."""
        return len(self._inbox)

    def _take(self, tick: Tick) -> None:
        if tick.epoch != self.epoch:
            self._new_epoch(tick.epoch)
        told = self.topic(tick.symbol).append(Entry.encode(tick))
        if self._spent == 0:
            try:
                asyncio.get_running_loop().call_soon(self._next_turn)
            except RuntimeError:
                return  # no event loop (a script, a unit test): nothing else could run anyway
        self._spent += 1 + told

    def _next_turn(self) -> None:
        """A new turn of the loop: a fresh slice, taken from the inbox while it has room (a
        `_take` while the slice has room schedules the next turn)."""
        self._spent = 0
        inbox = self._inbox
        if not inbox:
            return
        self.continuations += 1
        while inbox and self._spent < self.slice_size:
            tick = inbox.popleft()
            try:
                self._take(tick)
            except Exception:  # (as `deliver` would have raised to the broker): the rest still go
                logger.exception("tick %s:%d could not be delivered", tick.symbol, tick.seq)

    def reset_epoch(self, epoch: str) -> None:
        """The history that `seq` counts in was lost: forget it; cursors now resolve to gaps.

        Ticks still waiting are told first (they belong to the old history); this is rare."""
        while self._inbox:
            self._take(self._inbox.popleft())
        if epoch != self.epoch:
            self._new_epoch(epoch)

    def _new_epoch(self, epoch: str) -> None:
        self.epoch = epoch
        for topic in self.topics.values():
            topic.clear()
        told: set[Listener] = set()
        for audience in (*(t._audience for t in self.topics.values()), self._beats):
            for listener in audience.members():
                if listener not in told:
                    told.add(listener)
                    try:
                        listener.on_new_epoch()
                    except Exception:
                        logger.exception("a %s failed to take a new epoch", type(listener).__name__)

    def beat(self) -> None:
        for listener in self._beats.members():
            try:
                listener.on_beat()
            except Exception:
                logger.exception("a %s failed to take a heartbeat", type(listener).__name__)

    def close(self) -> None:
        """Server shutdown: every stream and held request finishes now."""
        self.closing = True
        for topic in self.topics.values():
            for listener in topic._audience.members():
                listener.wake()
        for listener in self._beats.members():
            listener.wake()
