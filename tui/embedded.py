"""The bundled server as a child process the app owns: started on a free port, stopped on exit.

Why a child process and not a task in the app's event loop: a server sharing the UI's loop would
add every repaint's stall to every delivery, so the delays the panes show would partly be the
app's own. In its own process it has its own core and its own GIL, as a real server would.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

__all__ = ["EmbeddedServer", "EmbeddedServerError"]

LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 20.0


class EmbeddedServerError(RuntimeError):
    """The bundled server did not start; the message says why in one line."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM the server if the app dies without cleaning up (kill -9)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedServer:
    """`with EmbeddedServer(["--tick-rate", "2"]) as url:` runs `pushpull-server` until the block ends."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.args = list(args)
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None

    def start(self) -> str:
        argv = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", *self.args]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        line = self._first_line(self.process)
        match = LISTENING.search(line or "")
        if match is None:
            self.stop()
            raise EmbeddedServerError(f"the bundled server did not start: {self._stderr() or line or 'no output'}")
        self.url = match.group(1)
        threading.Thread(target=self._drain, daemon=True).start()
        return self.url

    def _first_line(self, process: subprocess.Popen[str]) -> str | None:
        result: list[str] = []
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        return result[0] if result else None

    def _drain(self) -> None:
        """Keep reading the child's output so a full pipe never blocks it."""
        process = self.process
        if process is None or process.stdout is None:
            return
        for _ in process.stdout:
            pass

    def _stderr(self) -> str:
        process = self.process
        if process is None or process.stderr is None or process.poll() is None:
            return ""
        lines = [line.strip() for line in process.stderr.read().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM our child (by its PID), wait for it, and SIGKILL it if it will not go."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
