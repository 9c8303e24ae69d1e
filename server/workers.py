"""`--workers N`: N server processes accepting on one listening socket, so every core serves.

The parent binds the socket, forks the workers (each builds its own app and event loop after the
fork) and only supervises: a signal to it stops them all, and a worker that dies unexpectedly is
replaced. Workers run in their own process group, so a terminal's Ctrl+C reaches the parent alone
and each worker is stopped exactly once, by the parent's SIGTERM (a second signal would make
uvicorn skip its graceful shutdown).

The workers share the feed and `seq` through Redis (`server.broker.redis`); that is why N > 1
needs a Redis broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["supervise"]

RESTART_WINDOW = 30.0
MAX_RESTARTS = 5
"""Worker deaths within `RESTART_WINDOW` seconds after which the parent gives up (a crash loop)."""


def _fork(serve: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        status = 1
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            status = serve()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return pid


def supervise(count: int, serve: Callable[[], int], prog: str) -> int:
    """Run `serve` in `count` forked workers until a signal; the exit status to use."""
    stopping = False
    workers: set[int] = set()

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(count):
        workers.add(_fork(serve))
    deaths: list[float] = []
    status = 0
    while workers:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        workers.discard(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
        if len(deaths) > MAX_RESTARTS:
            print(
                f"{prog}: error: workers keep dying ({len(deaths)} in {RESTART_WINDOW:g} s); stopping", file=sys.stderr
            )
            status = 1
            stop(signal.SIGTERM, None)
            continue
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        print(f"{prog}: worker {pid} {how}; starting another", file=sys.stderr, flush=True)
        workers.add(_fork(serve))
    return status
