"""Run a mode client on its own event loop in its own thread, away from the UI's.

Why: a client measures delay when its tick is processed. On the UI's event loop every repaint
is a stall the tick waits behind (measured at 200 ticks/s: pane p99 91 ms against 1.7 ms for a
headless client), so the panes would show the app's own latency, not the mode's. In a thread of
its own the client only waits for the GIL, a few milliseconds at most. The UI reads the client's
plain counters when it repaints; ints and a bounded deque are safe to read across threads.

Stopping never waits on the caller's thread (the UI's): `stop()` only asks the client's loop to
cancel it. A client run again (a paused pane resuming) first waits, on its own new thread, for
the previous run to finish, so two runs of one client never overlap. `join_all()` gives every
client a bounded moment to close its connections when the app exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, Protocol

__all__ = ["ClientThread", "Runnable", "join_all"]


class Runnable(Protocol):
    """What a thread runs: a mode client, or the market feed (`tui.market`)."""

    @property
    def mode(self) -> str: ...

    def run(self) -> Coroutine[Any, Any, None]: ...


log = logging.getLogger("pushpull.runner")

PREVIOUS_RUN_WAIT = 10.0
"""Seconds a new run waits for the previous run of the same client to end."""

_threads: set[threading.Thread] = set()
"""Every client thread still running, for `join_all()` at exit."""
_threads_lock = threading.Lock()


class ClientThread:
    """`start()` runs `client.run()` on a private loop; `stop()` cancels it without waiting.

    Example:

        runner = ClientThread(client, after=previous_runner)
        runner.start()
        ...
        runner.stop()
    """

    def __init__(self, client: Runnable, *, after: ClientThread | None = None) -> None:
        self.client = client
        self._after = after._thread if after is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=f"pushpull-{self.client.mode}", daemon=True)
        with _threads_lock:
            _threads.add(self._thread)
        self._thread.start()

    def _main(self) -> None:
        try:
            if self._after is not None:
                self._after.join(PREVIOUS_RUN_WAIT)
                if self._after.is_alive():
                    log.warning("the previous %s run did not end in %.0f s", self.client.mode, PREVIOUS_RUN_WAIT)
            loop = asyncio.new_event_loop()
            try:
                with self._lock:
                    if self._stop_requested.is_set():
                        return
                    self._loop = loop
                    self._task = loop.create_task(self.client.run())
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(self._task)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                with self._lock:
                    self._loop = None
                loop.close()
        except Exception:
            log.exception("the %s client's thread failed", self.client.mode)
        finally:
            with _threads_lock:
                _threads.discard(threading.current_thread())

    def stop(self) -> None:
        """Ask the client to end (it closes its connection); returns at once. Asking again does
        nothing: a second cancel would cut short the client's own closing (a WebSocket's close
        handshake), leaving its loop to be closed with the connection still open."""
        with self._lock:
            if self._stop_requested.is_set():
                return
            self._stop_requested.set()
            loop, task = self._loop, self._task
            if loop is not None and task is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(task.cancel)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the thread; True if it ended. Not for the UI thread."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def join_all(timeout: float) -> int:
    """Wait, up to `timeout` s in all, for every client thread to end; returns how many did not."""
    deadline = time.monotonic() + timeout
    with _threads_lock:
        threads = list(_threads)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)
