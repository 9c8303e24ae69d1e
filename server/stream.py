"""One stream subscriber for SSE and WebSocket: cursors, in step or catching up, gaps, heartbeats.

A subscriber keeps a cursor (the last `seq` sent) per symbol into the hub's rings. While it is in
step (its cursor is one behind the tick that arrives) and its socket takes data, the hub writes
the tick's shared bytes straight to the socket (`server.fast_path`), with no task switch. Any
other time (the socket pushes back, a resume, a gap, no fast path) it is stalled: `wake()` hands
writing to a task, which runs `catch_up` from the ring until there is nothing left, then hands
writing back to the hub. The two streams differ only in their `Framer` (how a tick, a gap and a
heartbeat become bytes) and in who runs `catch_up`: the SSE request's own task, or a WebSocket
writer started on demand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic

from server.fast_path import Outlet
from server.hub import Entry, Hub, Listener
from server.stats import TransportStats
from server.wire import Framer, P

__all__ = ["StreamSubscriber"]


class StreamSubscriber(Listener, Generic[P]):
    """One stream's cursors and who writes next: the hub (in step) or its task (stalled)."""

    __slots__ = ("beat_due", "cursors", "epoch", "framer", "hub", "left", "outlet", "stalled", "stats")

    def __init__(self, hub: Hub, framer: Framer[P], stats: TransportStats) -> None:
        super().__init__()
        self.hub = hub
        self.framer: Framer[P] = framer
        self.stats = stats
        self.cursors: dict[str, int] = {}
        """Last seq sent per followed symbol."""
        self.epoch = hub.epoch
        """The history the cursors count in."""
        self.outlet: Outlet | None = None
        """The socket, when the fast path can write to it."""
        self.stalled = True
        """The task, not the hub, writes next: set until it has caught up."""
        self.beat_due = False
        self.left = False
        """The client is gone: nothing more is written."""

    def on_entry(self, entry: Entry) -> None:
        outlet = self.outlet
        symbol, seq = entry.symbol, entry.seq
        if outlet is not None and not self.stalled and self.cursors.get(symbol) == seq - 1 and outlet.ready():
            data, size = self.framer.tick_direct(entry)
            outlet.write(data)
            self.cursors[symbol] = seq
            stats = self.stats
            stats.messages_sent += 1
            stats.bytes_sent += size
            stats.direct_writes += 1
        else:
            self.stall()

    def on_beat(self) -> None:
        framer = self.framer
        if framer.heartbeat is None:
            return
        outlet = self.outlet
        if outlet is not None and not self.stalled and outlet.ready():
            outlet.write(framer.heartbeat_direct)
            self.stats.bytes_sent += len(framer.heartbeat)
            self.stats.direct_writes += 1
        else:
            self.beat_due = True
            self.stall()

    def on_new_epoch(self) -> None:
        self.stall()  # (`backlog` sends the gap)

    def follow_new_epoch(self) -> list[P]:
        """If the history was lost since the cursors were set: a gap per followed symbol, and the
        cursors moved to the new history's start (so it is sent from seq 1). Else nothing."""
        hub = self.hub
        if self.epoch == hub.epoch:
            return []
        self.epoch = hub.epoch
        for symbol in self.cursors:
            self.cursors[symbol] = 0
        return [self.framer.gap(symbol, hub.epoch, "epoch") for symbol in self.cursors]

    def stall(self) -> None:
        """The hub cannot write: hand writing to the task (noting first if the client left)."""
        self.stalled = True
        if self.outlet is not None and self.outlet.gone():
            self.left = True  # (a client that pipelined a request behind a stream is not flagged by uvicorn)
        self.wake()

    def backlog(self) -> tuple[list[P], int]:
        """What must go out before the hub may write again, cursors moved past it: (payloads,
        ticks among them). A cursor the ring no longer covers gets a gap and the latest tick:
        the stream conflates rather than closes. A due heartbeat goes only if no tick does."""
        hub, framer = self.hub, self.framer
        payloads: list[P] = self.follow_new_epoch()
        ticks = 0
        for symbol, cursor in list(self.cursors.items()):
            entries, gap = hub.topics[symbol].resume(cursor)
            if not entries:
                continue
            if gap:
                payloads.append(framer.gap(symbol, hub.epoch, "stale"))
            payloads += [framer.tick(entry) for entry in entries]
            ticks += len(entries)
            self.cursors[symbol] = entries[-1].seq
        if self.beat_due:
            self.beat_due = False  # ticks going out keep the stream alive as well as a heartbeat
            if not payloads and framer.heartbeat is not None:
                payloads.append(framer.heartbeat)
        return payloads, ticks

    async def catch_up(self, send: Callable[[list[P]], Awaitable[None]]) -> None:
        """Send the backlog, and whatever arrives meanwhile, until there is none; then the hub
        writes again (`stalled` cleared). Returns early if the client left or the server closes."""
        stats = self.stats
        while not (self.left or self.hub.closing):
            self.stalled = True
            payloads, ticks = self.backlog()
            if not payloads:
                self.stalled = False
                return
            if self.outlet is not None and self.outlet.gone():
                self.left = True
                return
            await send(payloads)
            if self.left or (self.outlet is not None and self.outlet.gone()):
                return  # (the send found the client gone: nothing was delivered)
            stats.messages_sent += ticks
            stats.bytes_sent += sum(len(payload) for payload in payloads)
