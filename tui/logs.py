"""Where the app's log goes: a file with `--log FILE`, and errors kept for after the app exits.

While Textual owns the terminal nothing may write to stderr (Python's last-resort handler would
draw over the screen), so the root logger always has a handler. Errors (a mode client's bug, a
thread that died) are also kept in memory and printed once the terminal is back, so a traceback
is never lost even without `--log`.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["KeptErrors", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
KEPT_ERRORS = 20


class KeptErrors(logging.Handler):
    """Keeps the first few ERROR records, formatted with their tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter(FORMAT))
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < KEPT_ERRORS:
            self.records.append(self.format(record))


def configure_logging(log_file: Path | None) -> KeptErrors:
    """Log to `log_file` (INFO and up, the bundled server's output included) and keep errors."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    kept = KeptErrors()
    root.addHandler(kept)
    for chatty in ("httpx", "httpcore", "websockets"):  # a line per request, on the clients' threads
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file_handler)
        root.setLevel(logging.INFO)
    else:
        root.setLevel(logging.ERROR)
    return kept
