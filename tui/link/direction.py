"""One direction of one relayed connection: what the link model does to each chunk (see `relay`)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import socket
import struct
from collections import deque
from collections.abc import Callable

from tui.link.profiles import LinkProfile

__all__ = ["Counters", "Direction", "reset"]

READ_SIZE = 64 * 1024
MIN_READ_SIZE = 1460  # one Ethernet segment's payload


def reset(transport: asyncio.WriteTransport) -> None:
    """Abort with a TCP reset (SO_LINGER 0), so the peer reads ECONNRESET rather than an EOF."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _End(enum.Enum):
    EOF = "eof"
    RESET = "reset"


class Counters:
    """Mutated on the link's loop only; read from any thread (ints: a snapshot may lag, never tear)."""

    def __init__(self) -> None:
        self.connections = 0
        self.bytes = {True: 0, False: 0}  # keyed by "up"
        self.chunks = {True: 0, False: 0}
        self.queued = 0
        self.peak_queued = 0


class Direction:
    """One direction of one relayed connection: reads from `source`, delivers to `sink` on schedule."""

    def __init__(
        self,
        *,
        profile: Callable[[], LinkProfile],
        counters: Counters,
        queue_limit: int,
        up: bool,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        source_transport: asyncio.WriteTransport,
        not_before: float,
        rng: random.Random,
    ) -> None:
        self._profile = profile
        self._counters = counters
        self._queue_limit = queue_limit
        self._up = up
        self._source = source
        self._sink = sink
        self._source_transport = source_transport
        self._rng = rng
        self._wire_free_at = not_before
        self._last_delivery = 0.0
        self._items: deque[tuple[float, bytes | _End]] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def _rate_kbit(self) -> float | None:
        profile = self._profile()
        return profile.effective_uplink_kbit if self._up else profile.bandwidth_kbit

    def _read_size(self) -> int:
        rate = self._rate_kbit()
        if rate is None:
            return READ_SIZE
        return max(MIN_READ_SIZE, min(READ_SIZE, int(rate * 1000 / 8 * 0.010)))

    def _arrival(self, read_at: float, size: int) -> float:
        profile = self._profile()
        rate = self._rate_kbit()
        leaves = max(read_at, self._wire_free_at)
        self._wire_free_at = leaves + (size * 8 / (rate * 1000) if rate else 0.0)
        arrives = self._wire_free_at + profile.latency_ms / 1000
        if profile.jitter_ms:
            arrives += self._rng.uniform(0.0, profile.jitter_ms) / 1000
        if profile.stall_chance and self._rng.random() < profile.stall_chance:
            arrives += profile.stall_ms / 1000
        self._last_delivery = max(arrives, self._last_delivery)
        return self._last_delivery

    def _put(self, read_at: float, item: bytes | _End) -> None:
        size = len(item) if isinstance(item, bytes) else 0
        self._items.append((self._arrival(read_at, size), item))
        self._ready.set()
        if size:
            self._queued += size
            counters = self._counters
            counters.queued += size
            counters.peak_queued = max(counters.peak_queued, self._queued)
            if self._queued >= self._queue_limit:
                self._room.clear()

    def _taken(self, size: int) -> None:
        self._queued -= size
        self._counters.queued -= size
        if self._queued < self._queue_limit:
            self._room.set()

    async def run(self) -> None:
        reading = asyncio.create_task(self._pump_in())
        try:
            await self._pump_out()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            self._taken(self._queued)  # whatever could not be delivered is dropped

    async def _pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._room.wait()
            try:
                data = await self._source.read(self._read_size())
            except OSError:  # ConnectionResetError among them: the sender aborted
                self._put(loop.time(), _End.RESET)
                return
            self._put(loop.time(), data or _End.EOF)
            if not data:
                return

    async def _pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        counters = self._counters
        while True:
            while not self._items:
                self._ready.clear()
                await self._ready.wait()
            arrives, item = self._items.popleft()
            if (wait := arrives - loop.time()) > 0:
                await asyncio.sleep(wait)
            try:
                if item is _End.RESET:
                    reset(self._sink.transport)
                    return
                if item is _End.EOF:
                    if self._sink.can_write_eof():
                        self._sink.write_eof()
                    return
                # Counted before the write, so whoever reads these bytes finds them counted.
                counters.bytes[self._up] += len(item)
                counters.chunks[self._up] += 1
                self._sink.write(item)
                await self._sink.drain()
            except (OSError, RuntimeError):
                # The receiver is gone: the sender learns it as a reset, as it would over TCP.
                reset(self._source_transport)
                return
            self._taken(len(item))
