"""The relays: a TCP hop on 127.0.0.1 between a mode client and the server that delays every byte.

Why a relay in the app's own process, rather than the kernel's `tc qdisc ... netem`: netem needs
root (or a network namespace) and Linux, and shapes a whole interface, so the server's own traffic
and every other program's would pay too. A relay needs nothing installed, runs wherever Python runs,
applies to exactly the connections the mode clients open (one relay per server address), treats
each direction on its own, and can change profile while the app runs.

What it models, per connection and per direction (client to server "up", server to client "down"):
- a chunk read at time t leaves when the wire is free (`max(t, busy until)`), occupies it
  len*8/bandwidth seconds, and arrives one-way latency later, plus a jitter sample (uniform in
  [0, jitter]) and, with `stall_chance`, a stall; never before the chunk ahead of it (FIFO: jitter
  delays, it never reorders, as TCP delivers in order);
- the TCP handshake: the relay accepts at once (loopback), but a real connect costs a round trip
  before the first byte can go, so the client's first bytes leave no earlier than 2 x latency after
  the accept and the server's no earlier than 3 x latency (when a real server would have accepted).
  A new connection's first answer thus takes 4 x latency, later ones 2 x latency: a client that
  opens a connection per request (a webhook sender without keep-alive) pays the set-up every time;
- back-pressure: a direction stops reading once `queue_limit` bytes wait in it (counting what sits
  in the outgoing socket buffer), as a TCP window closes, so a side that does not read stalls the
  other and memory stays bounded;
- EOF (a half-close included) goes on after the bytes queued ahead of it; a reset on one side
  aborts the other (after the latency), and a side that fails while being written to is reset.

Chunks are what one `read()` returns, at most about 10 ms of wire time when a bandwidth is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tui.link.direction import Counters, Direction, reset
from tui.link.profiles import LinkProfile

__all__ = ["QUEUE_LIMIT", "Link", "LinkStats"]

QUEUE_LIMIT = 1 << 20
"""Bytes one direction of one connection may hold before it stops reading (1 MiB)."""
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


@dataclass(frozen=True, slots=True)
class LinkStats:
    """What the relays of one `Link` have done so far (for tests and a status line)."""

    connections: int
    """Connections accepted, over every relay."""
    bytes_up: int
    """Passed on client to server (counted as they are written to the server's socket)."""
    bytes_down: int
    """Passed on server to client."""
    chunks_up: int
    chunks_down: int
    queued_bytes: int
    """Read from one side and not yet taken by the other, now (every connection, both ways)."""
    peak_queued_bytes: int
    """The most one direction of one connection has held at any time."""


class Link:
    """Relays for one process, on a thread and event loop of their own (mode clients run on threads
    of their own, each with its loop, and all may share one `Link`).

    >>> link = Link(PROFILES["4g"], seed=1)
    >>> url = link.through("http://127.0.0.1:8000/hook")   # "http://127.0.0.1:RELAY_PORT/hook"
    >>> link.close()

    The app should connect directly, with no `Link`, when `profile.emulates` is False.
    """

    def __init__(self, profile: LinkProfile, *, seed: int | None = None, queue_limit: int = QUEUE_LIMIT) -> None:
        self._profile = profile
        self._seed = seed
        self.queue_limit = queue_limit
        self._counters = Counters()
        self._lock = threading.Lock()
        self._ports: dict[tuple[str, int], int] = {}
        self._servers: dict[tuple[str, int], asyncio.Server] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="link-relays", daemon=True)
        self._thread.start()

    @property
    def profile(self) -> LinkProfile:
        return self._profile

    @profile.setter
    def profile(self, profile: LinkProfile) -> None:
        """A new profile applies to every chunk read from now on, on open connections too (a
        connection's handshake cost was fixed when it was accepted)."""
        self._profile = profile

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> LinkStats:
        c = self._counters
        return LinkStats(
            connections=c.connections,
            bytes_up=c.bytes[True],
            bytes_down=c.bytes[False],
            chunks_up=c.chunks[True],
            chunks_down=c.chunks[False],
            queued_bytes=c.queued,
            peak_queued_bytes=c.peak_queued,
        )

    def through(self, url: str) -> str:
        """`url` with its host and port replaced by a relay to them (started on first use, then
        reused): "http://h:p/hook" -> "http://127.0.0.1:R/hook". Callable from any thread but the
        link's own. Scheme, path and query are kept; TLS (https, wss) passes through unchanged, so a
        client must still check the certificate against the original host name."""
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        if parts.hostname is None or port is None:
            raise ValueError(f"no host and port to relay to in {url!r}")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Link.through() would wait on its own event loop")
        target = (parts.hostname, port)
        with self._lock:
            if self._closed:
                raise RuntimeError("the link is closed")
            relay_port = self._ports.get(target)
            if relay_port is None:
                relay_port = asyncio.run_coroutine_threadsafe(self._listen(target), self._loop).result(timeout=10)
                self._ports[target] = relay_port
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{relay_port}" if userinfo else f"127.0.0.1:{relay_port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def release(self, url: str) -> None:
        """Stop relaying to `url`'s host and port (a webhook receiver that closed: its port will not
        come back), so relays do not pile up; connections already open end on their own."""
        parts = urlsplit(url)
        target = (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 0))
        with self._lock:
            if self._closed or self._ports.pop(target, None) is None:
                return
        with contextlib.suppress(RuntimeError):  # (the loop closed in between)
            self._loop.call_soon_threadsafe(self._stop_listening, target)

    def _stop_listening(self, target: tuple[str, int]) -> None:
        server = self._servers.pop(target, None)
        if server is not None:
            server.close()

    @property
    def listening(self) -> int:
        """Relays listening now (one per target)."""
        return len(self._ports)

    def close(self) -> None:
        """Stop every relay and the thread: listening sockets close (a connect is refused), open
        connections are aborted. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- on the link's loop ---------------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _listen(self, target: tuple[str, int]) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Only `close()` cancels a relay; it ends quietly, since Python 3.11's streams ask a
            # cancelled callback task for its exception (and log the CancelledError that raises).
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay(target, reader, writer)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self._servers[target] = server
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _shut_down(self) -> None:
        for server in self._servers.values():
            server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)

    def _rng(self, connection: int, direction: str) -> random.Random:
        """Each direction of each connection draws from its own stream, so with a seed its jitter
        does not depend on how other connections interleave with it."""
        return random.Random(f"{self._seed}:{connection}:{direction}") if self._seed is not None else random.Random()

    async def _relay(
        self, target: tuple[str, int], client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        accepted_at = loop.time()
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        number = self._counters.connections
        self._counters.connections += 1
        writers = [client_writer]
        try:
            try:
                server_reader, server_writer = await asyncio.open_connection(*target)
            except OSError:
                reset(client_writer.transport)  # the client sees a reset where TCP would refuse
                return
            writers.append(server_writer)
            latency = self._profile.latency_ms / 1000

            def direction(up: bool, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> Direction:
                # The handshake's round trip: the client's first bytes leave 2L after the accept,
                # the server's first 3L after it (its SYN-ACK's way back, then the request's way).
                return Direction(
                    profile=lambda: self._profile,
                    counters=self._counters,
                    queue_limit=self.queue_limit,
                    up=up,
                    source=source,
                    sink=sink,
                    source_transport=(client_writer if up else server_writer).transport,  # (the source side)
                    not_before=accepted_at + (2 if up else 3) * latency,
                    rng=self._rng(number, "up" if up else "down"),
                )

            up, down = direction(True, client_reader, server_writer), direction(False, server_reader, client_writer)
            await asyncio.gather(up.run(), down.run())
            for writer in writers:
                writer.close()
        finally:
            for writer in writers:
                if not writer.transport.is_closing():
                    reset(writer.transport)
            self._connections.discard(task)
