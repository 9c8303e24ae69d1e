"""One interface for every delivery mode: panes, `pushpull-bench` and the tests drive them alike.

A mode client runs until cancelled: it connects, receives ticks, and when the connection fails it
backs off (exponentially, with jitter), reconnects and resumes from its cursor. What it knows is
public and plain: `state`, `stats`, `last_tick`, `previous_price`; readers sample it at their own
pace (a pane repaints a few times a second however fast ticks come).

Example:

    client = make_client("sse", "http://127.0.0.1:8000", "RELIANCE")
    task = asyncio.create_task(client.run())
    ...
    print(client.state, client.last_tick, client.stats.delay_percentile(0.5))
    await client.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, NamedTuple

import httpx
from pydantic import ValidationError

from server.schema import Tick
from tui.defaults import DEFAULT_POLL_INTERVAL
from tui.modes.bounded import fetch
from tui.modes.clock import ServerClock
from tui.modes.limits import LimitExceeded, Limits
from tui.modes.stats import ModeStats
from tui.modes.wire import request_bytes, response_head_bytes

__all__ = ["Backoff", "ConnectionState", "Event", "ModeClient", "ModeError", "TickListener"]

TickListener = Callable[[Tick], None]

log = logging.getLogger("pushpull.modes")

RECENT_PRICES = 60
"""Prices kept for a sparkline."""
RECENT_EVENTS = 2000
"""Receipts and empty answers kept for a timeline (minutes of them at the usual rates)."""


class Event(NamedTuple):
    """Something a client saw, for a timeline: a tick received, or an answer with nothing new."""

    at: float
    """Local time (the client's `clock.local()`)."""
    seq: int
    """The tick's seq; 0 for an empty answer."""

    @property
    def empty(self) -> bool:
        return self.seq == 0


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    """A bug, not the network: it stopped, with the error shown and its traceback logged."""
    STOPPED = "stopped"


class ModeError(Exception):
    """The server answered something this mode cannot use (a 404 symbol, a malformed body)."""


RETRY_AFTER_CAP = 60.0
"""The longest `retry-after` honoured, in seconds."""

RETRIED_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    OSError,  # TimeoutError too: a request past its deadline
    ModeError,
    LimitExceeded,
    ValidationError,
    ValueError,
)
"""The network, or a server answering what a mode cannot use or more than it may send (see
`tui.modes.limits`): back off and try again."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits uniform(c/2, c), c = min(cap, base * 2**n).

    Half the ceiling is kept as a floor ("equal jitter") so a retry never fires at once.
    """

    base: float = 0.5
    cap: float = 10.0
    unreachable_after: int = 3
    """Failed attempts in a row, without ever going live, before the state says unreachable."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * (2**attempt))
        return max(0.05, rng.uniform(ceiling / 2, ceiling))


class ModeClient(ABC):
    """A subscriber to one symbol by one mode, with its state and stats."""

    mode: ClassVar[str]
    """Registry name: poll, longpoll, sse, ws, webhook."""
    title: ClassVar[str]
    """Human name: "HTTP polling", "Server-Sent Events", ..."""
    resumes_from_cursor: ClassVar[bool] = True
    """After a pause it asks for what it missed (long poll, SSE, WebSocket); poll and webhook
    cannot, so they start afresh and what was published while paused is not `missed`."""
    transport_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """A transport library's own errors (websockets, httpx-sse): retried like network errors.
    Anything else unexpected is a bug: the client stops in the FAILED state and logs it."""

    def __init__(
        self,
        server_url: str,
        symbol: str,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        clock: ServerClock | None = None,
        backoff: Backoff | None = None,
        http: httpx.AsyncClient | None = None,
        on_tick: TickListener | None = None,
        keep_all_delays: bool = False,
        seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.symbol = symbol
        self.poll_interval = poll_interval
        self.clock = clock or ServerClock()
        self.backoff = backoff or Backoff()
        self.on_tick = on_tick
        self.limits = limits or Limits()
        """The bounds on what the server may send and how long it may take."""
        self.stats = ModeStats(all_delays_ms=[] if keep_all_delays else None)
        self.state = ConnectionState.CONNECTING
        self.retry_at: float | None = None
        """Local time of the next reconnect attempt, while reconnecting / unreachable."""
        self.error: str | None = None
        """Why the last attempt failed, for the pane's status line."""
        self.last_tick: Tick | None = None
        self.running_since: float | None = None
        """Local time this run started (None while not running): ticks published before it
        are not this client's to miss."""
        self.events: deque[Event] = deque(maxlen=RECENT_EVENTS)
        """What arrived when, newest last: ticks and empty answers (for a pane's timeline)."""
        self.recent_prices: deque[float] = deque(maxlen=RECENT_PRICES)
        """The prices of the last ticks received, every one (a pane's sparkline)."""
        self.previous_price: float | None = None
        self.epoch: str | None = None
        self.cursor: int | None = None
        """Last seq received in `epoch`: where a reconnect resumes."""
        self.retry_after: float | None = None
        """Seconds the server asked us to wait (`retry-after`) before the next attempt."""
        self.measure_after: float | None = None
        """Local time before which delays are not recorded (the app's own start-up stall)."""
        self.replay_before: float | None = None
        """Server time of a resume: ticks published before it are counted as `replayed`."""
        self.gap_uncounted = False
        """Set by `reset_stats()`: the next gap in seqs spans the reset, and what was published
        before it is not this count's to miss."""
        self.resets = 0
        """How many times the counters were reset (a poll sent before the latest one is older)."""
        self.counting_since = self.clock.local()
        """Local time the counters started: the client's creation or its last reset."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop `run()` is on, while it runs."""
        self.skipped_from: tuple[str, int] | None = None
        """(epoch, cursor) when the server last skipped us ahead: the next tick in that epoch
        tells how many ticks we never got."""
        self._http = http
        self._owns_http = http is None
        self._rng = random.Random(seed)
        self._stopped = asyncio.Event()

    # -- what a pane shows -------------------------------------------------------------------

    @abstractmethod
    def explain(self) -> str:
        """One line on how this mode works, e.g. "asks every 1.0 s"."""

    def retry_in(self) -> float | None:
        if self.retry_at is None:
            return None
        return max(0.0, self.retry_at - self.clock.local())

    # -- running -------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.limits.request_deadline)
        return self._http

    async def run(self) -> None:
        """Receive until `stop()` or cancellation, reconnecting with backoff on any failure.

        It may run again after it ends (a paused pane resumes), on another event loop too.
        """
        if not self._stopped.is_set():
            self._stopped = asyncio.Event()  # bound to the loop this run is on
        self._loop = asyncio.get_running_loop()
        self.running_since = self.clock.local()
        retried: tuple[type[BaseException], ...] = (*RETRIED_ERRORS, *self.transport_errors)
        failures = 0
        went_live = False
        failed = False
        try:
            while not self._stopped.is_set():
                self.retry_at = None
                try:
                    await self._attempt_until_stopped()
                    self.error = "the server closed the connection"
                except asyncio.CancelledError:
                    raise
                except retried as exc:
                    self.error = describe(exc)
                except Exception as exc:
                    log.exception("%s client for %s failed", self.mode, self.symbol)
                    self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    failed = True
                    break
                if self._stopped.is_set():
                    break
                was_live = self.state is ConnectionState.LIVE
                went_live = went_live or was_live
                self.stats.open_connections = 0
                failures = 1 if was_live else failures + 1
                if was_live:
                    self.stats.reconnects += 1
                if failures >= self.backoff.unreachable_after:
                    self.state = ConnectionState.UNREACHABLE
                elif went_live:
                    self.state = ConnectionState.RECONNECTING
                else:
                    self.state = ConnectionState.CONNECTING
                delay = self.backoff.delay(failures - 1, self._rng)
                if self.retry_after is not None:
                    delay, self.retry_after = max(delay, min(self.retry_after, RETRY_AFTER_CAP)), None
                self.retry_at = self.clock.local() + delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
        finally:
            self._loop = None
            self.running_since = None
            self.state = ConnectionState.FAILED if failed else ConnectionState.STOPPED
            self.retry_at = None
            self.stats.open_connections = 0
            await self.close()

    async def stop(self) -> None:
        """Ask `run()` to finish: a receive blocked in a read is cancelled, closing its connection."""
        self._stopped.set()

    async def _attempt(self) -> None:
        """One connection's life: learn the server's clock, then receive."""
        await self.clock.sync(self.http, self.server_url, stats=self.stats, limits=self.limits)
        await self.receive()

    async def _attempt_until_stopped(self) -> None:
        """`_attempt()`, cut short by `stop()`: a quiet stream or a server that never answers
        (the clock sync's included) must not keep `run()` waiting."""
        receiving = asyncio.ensure_future(self._attempt())
        stopping = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not receiving.done():
                receiving.cancel()
                await asyncio.wait((receiving,))  # let it close its stream or socket
            if not receiving.cancelled():
                receiving.exception()  # retrieved here even when we are being cancelled ourselves
        if not receiving.cancelled():
            receiving.result()

    async def close(self) -> None:
        """Release what `run()` opened (the HTTP client, a receiver)."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    @abstractmethod
    async def receive(self) -> None:
        """Connect and hand every tick to `accept()` until the connection ends or fails."""

    def reset_stats(self) -> None:
        """Zero the counters: from here on, nothing published before now counts as missed.

        Safe from any thread: while the client runs, the reset runs on its own loop, between two
        of its steps, so a tick being taken is counted wholly before it or wholly after."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # (the loop closed in between: reset here)
                loop.call_soon_threadsafe(self._reset_now)
                return
        self._reset_now()

    def _reset_now(self) -> None:
        self.stats.reset()
        self.gap_uncounted = True
        self.skipped_from = None
        self.resets += 1
        self.counting_since = self.clock.local()

    def resume_after_pause(self) -> None:
        """Call before running again after a pause: nothing published while paused is a delay
        (a resuming mode replays it) or a miss (a mode that cannot resume starts afresh)."""
        if self.resumes_from_cursor:
            self.replay_before = self.clock.now()
        else:
            self.cursor = None
            self.skipped_from = None

    # -- what subclasses call ------------------------------------------------------------------

    async def exchange(self, request: httpx.Request, deadline: float | None = None) -> tuple[httpx.Response, bytes]:
        """Send a request and read its answer and body within `deadline` seconds (the limits'
        request deadline by default) and the body cap, counting both on the wire as they happen
        (a held long poll's request is on the wire long before its answer)."""
        return await fetch(
            self.http,
            request,
            deadline=self.limits.request_deadline if deadline is None else deadline,
            max_bytes=self.limits.body_bytes,
            stats=self.stats,
        )

    def count_exchange(self, response: httpx.Response) -> None:
        """Add a whole (read) HTTP exchange to the wire bytes: request, response head and body."""
        self.stats.wire_bytes_sent += request_bytes(response.request)
        self.stats.wire_bytes_received += response_head_bytes(response) + len(response.content)

    def answered_empty(self) -> None:
        """An answer with nothing new (304, 204): counted, and kept for the timeline."""
        self.stats.empty_responses += 1
        self.events.append(Event(self.clock.local(), 0))

    def went_live(self) -> None:
        self.state = ConnectionState.LIVE
        self.error = None

    def saw_gap(self) -> None:
        """The server said it cannot resume from our cursor: count it and start afresh."""
        self.stats.gaps += 1
        # Skipped ticks are misses, unless we were paused: then the pause outlasted the server's
        # history, and what it dropped was published while we chose not to listen.
        if self.epoch is not None and self.cursor is not None and self.replay_before is None:
            self.skipped_from = (self.epoch, self.cursor)
        self.cursor = None
        self.epoch = None  # the tick that follows may bring a new epoch: one gap, counted once

    def accept(self, tick: Tick, size: int = 0) -> bool:
        """Take one received tick: update cursor, stats and delay. False for a duplicate."""
        stats = self.stats
        stats.bytes_received += size
        if tick.epoch != self.epoch:
            if self.epoch is not None:
                stats.gaps += 1
            self.epoch = tick.epoch
            self.cursor = None
        live = self.cursor is not None
        skipped_from, self.skipped_from = self.skipped_from, None
        if not live and skipped_from is not None and skipped_from[0] == tick.epoch:
            stats.missed += max(0, tick.seq - skipped_from[1] - 1)  # same history: those were lost to us
        if live:
            assert self.cursor is not None
            if tick.seq <= self.cursor:
                stats.duplicates += 1
                return False
            if not self.gap_uncounted:
                stats.missed += tick.seq - self.cursor - 1
        self.gap_uncounted = False
        self.cursor = tick.seq
        stats.updates += 1
        if self.replay_before is not None and tick.ts > self.replay_before:
            self.replay_before = None  # caught up: from here on delays are the mode's again
        if self.replay_before is not None:
            stats.replayed += 1
        elif live and (self.measure_after is None or self.clock.local() >= self.measure_after):
            # The first tick after (re)subscribing without a cursor is the latest one, published
            # who knows when: it says how old the price was, not how late an update came.
            stats.record_delay(self.clock.delay_ms(tick.ts))
        if self.last_tick is not None:
            self.previous_price = self.last_tick.price
        self.recent_prices.append(tick.price)
        self.events.append(Event(self.clock.local(), tick.seq))
        self.last_tick = tick
        if self.on_tick is not None:
            self.on_tick(tick)
        return True


def describe(exc: BaseException) -> str:
    """A short, human reason for a failed attempt."""
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
