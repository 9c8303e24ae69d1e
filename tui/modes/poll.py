"""HTTP polling: ask for the latest price on a fixed beat, whether or not it changed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from server.schema import Tick
from tui.modes.base import ModeClient, ModeError

__all__ = ["PollClient"]


class PollClient(ModeClient):
    """`GET /api/price/{symbol}` every `poll_interval` seconds, with `If-None-Match`.

    The beat is fixed: requests start on a grid `poll_interval` apart, however long each takes;
    a request slower than the interval starts the next one at once rather than bunching up.
    Ticks published between two polls are never seen: `stats.missed` counts them. No connection
    is held between requests, so `stats.open_connections` stays 0.

    Example:

        client = PollClient("http://127.0.0.1:8000", "TCS", poll_interval=0.5)
        await client.run()
    """

    mode: ClassVar[str] = "poll"
    title: ClassVar[str] = "HTTP polling"
    resumes_from_cursor: ClassVar[bool] = False

    def __init__(self, server_url: str, symbol: str, **options: Any) -> None:
        super().__init__(server_url, symbol, **options)
        if not self.poll_interval > 0:
            raise ValueError(f"poll interval must be positive, not {self.poll_interval!r}")
        self._beat: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        """While receiving: its loop and the event that cuts a wait short when the interval changes."""
        self.etag: str | None = None
        """The last answer's ETag: an unchanged price costs a 304 with no body."""

    def explain(self) -> str:
        return f"asks every {self.poll_interval:g} s"

    @property
    def poll_interval(self) -> float:
        return self._poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        """A new interval applies at once: a wait for the old beat is cut short (from any thread:
        the app sets it from the UI's, the client runs on its own)."""
        self._poll_interval = seconds
        self._poll_now()

    def _reset_now(self) -> None:
        """Zero the counters and poll at once: the gap the next answer closes, which is not
        counted as missed, then holds only what was published before the reset."""
        super()._reset_now()
        self._poll_now()

    def _poll_now(self) -> None:
        """Cut short the wait for the next beat, from any thread."""
        beat: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = getattr(self, "_beat", None)
        if beat is not None:
            loop, changed = beat
            with contextlib.suppress(RuntimeError):  # (the loop closed in between)
                loop.call_soon_threadsafe(changed.set)

    async def receive(self) -> None:
        url = f"{self.server_url}/api/price/{self.symbol}"
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        self._beat = (loop, changed)
        next_start = loop.time()
        try:
            while True:
                await self.poll_once(url)
                next_start += self.poll_interval
                now = loop.time()
                if next_start < now:  # behind the beat: start now, do not fire the missed ones
                    next_start = now
                try:
                    async with asyncio.timeout(next_start - now):  # (not wait_for: 3.11 could lose a stop)
                        await changed.wait()
                except TimeoutError:
                    continue
                changed.clear()  # a new interval or a reset: poll now, and beat from here
                next_start = loop.time()
        finally:
            self._beat = None

    async def poll_once(self, url: str) -> None:
        headers = {"If-None-Match": self.etag} if self.etag else None
        resets = self.resets
        # A poll answers at once: one that hangs or trickles is a failure at the request deadline.
        response, body = await self.exchange(self.http.build_request("GET", url, headers=headers))
        self.stats.requests += 1
        status = response.status_code
        if status == 404:
            raise ModeError(f"unknown symbol {self.symbol}")
        if status == 304:
            self.answered_empty()
            if self.resets == resets:  # asked after the reset, and nothing new: the gap is empty
                self.gap_uncounted = False
        else:
            response.raise_for_status()
            if status != 200:
                raise ModeError(f"unexpected HTTP {status} from {url}")
            self.accept(Tick.model_validate_json(body), len(body))
            self.etag = response.headers.get("ETag")
        self.went_live()
