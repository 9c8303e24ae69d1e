"""`--workers N`: N server processes accepting on one listening socket, so every core serves.

The parent binds the socket, forks the workers (each builds its own app and event loop after the
fork) and only supervises: a signal to it stops them all, and a worker that dies unexpectedly is
replaced, after a pause that grows while workers keep dying. Workers run in their own process
group, so a terminal's Ctrl+C reaches the parent alone and each worker is stopped exactly once, by
the parent's SIGTERM (a second signal would make uvicorn skip its graceful shutdown). A worker
whose parent dies, even by SIGKILL, is sent SIGTERM by the kernel (Linux: PR_SET_PDEATHSIG).

The workers share the feed and `seq` through Redis (`server.broker.redis`); that is why N > 1
needs a Redis broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

__all__ = ["supervise"]

STOPPING_SIGNALS = {signal.SIGTERM, signal.SIGINT}
RESTART_WINDOW = 60.0
RESTART_PAUSE_CAP = 30.0
"""A replacement starts at once after the first death in `RESTART_WINDOW` s, then after 1, 2, 4... s,
at most this long; each on its own clock, so workers dying together come back together."""
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies; if it already has, leave now."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(0)


def _fork(serve: Callable[[], int]) -> int:
    """Fork a worker with the stopping signals blocked, so the parent's handler can neither run
    in the child nor miss the new PID (the caller records it, then unblocks)."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        status = 1
        try:
            os.setpgid(0, 0)
            for sig in STOPPING_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING_SIGNALS)
            _die_with_parent(parent)
            status = serve()
        except BaseException:
            traceback.print_exc()  # (os._exit below would end the process before Python printed it)
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

    def start_one() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING_SIGNALS)
        try:
            if not stopping:
                workers.add(_fork(serve))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING_SIGNALS)

    for sig in STOPPING_SIGNALS:
        signal.signal(sig, stop)
    for _ in range(count):
        start_one()
    deaths: list[float] = []
    restarts: list[float] = []
    """When each replacement is due: each dead worker's pause runs on its own clock."""
    while workers or (restarts and not stopping):
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, wait_status = 0, 0
        if pid:
            workers.discard(pid)
            if not stopping:
                code = os.waitstatus_to_exitcode(wait_status)
                now = time.monotonic()
                deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
                pause = min(RESTART_PAUSE_CAP, 2.0 ** (len(deaths) - 2)) if len(deaths) > 1 else 0.0
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                print(f"{prog}: worker {pid} {how}; starting another in {pause:g} s", file=sys.stderr, flush=True)
                restarts.append(now + pause)
            continue
        now = time.monotonic()
        for due in [t for t in restarts if t <= now]:
            restarts.remove(due)
            start_one()
        time.sleep(0.05)
    return 0
