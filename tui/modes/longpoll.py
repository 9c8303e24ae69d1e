"""Long polling, the midway: each request is held by the server until a tick newer than ours exists."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx

from server.schema import LongPollReply
from tui.modes.base import ModeClient, ModeError

__all__ = ["LongPollClient"]

MIN_HOLD, MAX_HOLD = 1.0, 60.0
"""The hold times the server accepts (`timeout` query parameter)."""
QUICK_EMPTY = 1.0
"""Seconds: a 204 sooner than this (or a tenth of the hold) was not held."""


def retry_after_seconds(response: httpx.Response) -> float | None:
    """A `retry-after` in seconds (the only form this server sends), if there is one."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class LongPollClient(ModeClient):
    """`GET /api/longpoll/{symbol}?after=SEQ&epoch=E&timeout=S`, asked again as soon as it answers.

    A 200 brings every tick after our cursor (or the latest one with `gap` set); a 204 means the
    hold ran out with nothing new. `stats.open_connections` is 1 while a request is held.

    Example:

        client = LongPollClient("http://127.0.0.1:8000", "INFY", hold_timeout=25.0)
        await client.run()
    """

    mode: ClassVar[str] = "longpoll"
    title: ClassVar[str] = "Long polling"

    def __init__(self, server_url: str, symbol: str, *, hold_timeout: float = 25.0, **options: Any) -> None:
        super().__init__(server_url, symbol, **options)
        if not MIN_HOLD <= hold_timeout <= MAX_HOLD:
            raise ValueError(f"hold timeout must be {MIN_HOLD:g}..{MAX_HOLD:g} s, not {hold_timeout!r}")
        self.hold_timeout = hold_timeout
        """How long the server may hold a request before answering 204."""
        self._deadline = hold_timeout + self.limits.longpoll_margin
        """The whole request's: past it the server is gone, or trickling."""
        self._timeout = httpx.Timeout(self.limits.request_deadline, read=self._deadline)

    def explain(self) -> str:
        return "holds a request until a tick arrives"

    def query(self) -> dict[str, str]:
        """No cursor (the first request, or after a gap): the server answers the latest tick at once."""
        params = {"timeout": f"{self.hold_timeout:g}"}
        if self.cursor is not None:
            params["after"] = str(self.cursor)
            if self.epoch is not None:
                params["epoch"] = self.epoch
        return params

    async def receive(self) -> None:
        url = f"{self.server_url}/api/longpoll/{self.symbol}"
        stats = self.stats
        loop = asyncio.get_running_loop()
        quick_empties = 0
        while True:
            stats.open_connections = 1
            asked = loop.time()
            try:
                request = self.http.build_request("GET", url, params=self.query(), timeout=self._timeout)
                response, body = await self.exchange(request, self._deadline)
            finally:
                stats.open_connections = 0
            stats.requests += 1
            status = response.status_code
            if status == 404:
                raise ModeError(f"unknown symbol {self.symbol}")
            if status == 204:
                self.answered_empty()
                self.went_live()
                # A server that answers "nothing new" without holding (a proxy's timeout, a bug)
                # must not be asked again at once, over and over: back off after the second.
                quick = loop.time() - asked < min(QUICK_EMPTY, self.hold_timeout / 10)
                quick_empties = quick_empties + 1 if quick else 0
                if quick_empties >= 2:
                    await asyncio.sleep(self.backoff.delay(quick_empties - 2, self._rng))
                continue
            quick_empties = 0
            if status == 503:
                self.retry_after = retry_after_seconds(response)
            response.raise_for_status()
            if status != 200:
                raise ModeError(f"unexpected HTTP {status} from {url}")
            reply = LongPollReply.model_validate_json(body)
            self.went_live()
            if reply.gap:
                self.saw_gap()
            stats.bytes_received += len(body)  # the whole envelope, once, however many ticks it holds
            for tick in reply.ticks:
                self.accept(tick)
