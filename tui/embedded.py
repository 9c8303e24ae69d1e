"""The bundled server as a child process the app owns: started on a free port, stopped on exit.

Why a child process and not a task in the app's event loop: a server sharing the UI's loop would
add every repaint's stall to every delivery, so the delays the panes show would partly be the
app's own. In its own process it has its own core and its own GIL, as a real server would.

Two things keep the child honest and alive:
- it runs this installation's `server` package, whatever the working directory or `PYTHONPATH`
  holds (`python -m server` would run a `server.py` in the user's folder instead);
- everything it writes (stdout and stderr, merged) is always read, so a chatty server never
  blocks on a full pipe; the last lines are kept for the error message if it dies, and each line
  goes to the `pushpull.server` logger (`pushpull-tui --log FILE` keeps them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import server

__all__ = ["EmbeddedServer", "EmbeddedServerError", "server_command"]

LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 20.0
KEPT_LINES = 50
"""Lines of the child's output kept in memory for the message when it fails."""

log = logging.getLogger("pushpull.server")

_LAUNCH = (
    "import sys\n"
    "root = sys.argv.pop(1)\n"
    "if root not in sys.path:\n"
    "    sys.path.insert(0, root)\n"
    "from server.__main__ import main\n"
    "main()\n"
)


def server_command(args: Sequence[str] = ()) -> list[str]:
    """The argv that runs *this* installation's `pushpull-server` with `args`.

    `-E` ignores `PYTHONPATH` (and the other `PYTHON*` variables) and `-P` keeps the working
    directory off `sys.path`; the folder holding the `server` package the app itself imported is
    put first instead, so a stray `server.py` can never stand in for it. The user's site-packages
    stay visible (unlike `-I`), so a `pip install --user` keeps working.
    """
    root = str(Path(server.__file__).resolve().parent.parent)
    return [sys.executable, "-E", "-P", "-c", _LAUNCH, root, *args]


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
        self.last_lines: deque[str] = deque(maxlen=KEPT_LINES)
        """The child's most recent output lines (stdout and stderr together)."""
        self.stopped_by_us = False
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        return server_command(["--host", "127.0.0.1", "--port", "0", *self.args])

    def start(self) -> str:
        """Start the child and return its URL once it listens; raise `EmbeddedServerError` if it will not."""
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(target=self._read_output, name="pushpull-server-output", daemon=True)
        self._reader.start()
        self._listening.wait(START_TIMEOUT)
        if self.url is None:
            self.stop()
            raise EmbeddedServerError(f"the bundled server did not start: {self.failure() or 'no output'}")
        return self.url

    def _read_output(self) -> None:
        """Read every line the child writes, until it exits: a full pipe would block it."""
        process = self.process
        assert process is not None and process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                self.last_lines.append(line)
                log.info("%s", line)
                if self.url is None and (match := LISTENING.search(line)):
                    self.url = match.group(1)
                    self._listening.set()
        finally:
            self._listening.set()  # it ended without listening: start() need not wait any longer

    def failure(self) -> str:
        """The child's last non-empty line: usually its one-line error."""
        lines = [line.strip() for line in self.last_lines if line.strip()]
        return lines[-1] if lines else ""

    @property
    def exit_status(self) -> int | None:
        """The child's exit status if it has ended, else None."""
        return None if self.process is None else self.process.poll()

    @property
    def died(self) -> bool:
        """It ended without being asked to: the app should say so, with its last lines."""
        return not self.stopped_by_us and self.exit_status is not None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM our child (by its PID), wait for it, and SIGKILL it if it will not go."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self.stopped_by_us = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        if self._reader is not None:
            self._reader.join(1.0)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
