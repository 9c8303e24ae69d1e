"""The app's and the bench's defaults, each in one place (the server's are in `server.settings`)."""

from __future__ import annotations

from server.settings import Settings

__all__ = [
    "DEFAULT_MODES",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_SYMBOL",
    "DEFAULT_TICK_RATE",
    "MAX_PANES",
    "POLL_INTERVALS",
    "POLL_INTERVAL_RANGE",
]

DEFAULT_SYMBOL = "RELIANCE"
DEFAULT_MODES = ("poll", "longpoll", "sse", "ws")
"""The panes the app opens with."""
DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between polls. With the server's default 2 ticks/s, λ·I = 1: about a third of polls
come back empty and a third of ticks are never seen, so both costs of polling show at once
(at λ·I = 2 empties fall to 14%; at 0.5, misses fall to 21%)."""
POLL_INTERVAL_RANGE = (0.05, 60.0)
"""The poll intervals a flag or a key may set, in seconds (inclusive)."""
POLL_INTERVALS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Steps for the poll interval keys, within `POLL_INTERVAL_RANGE` (the advisor plots along them)."""
DEFAULT_TICK_RATE = Settings().tick_rate
"""Ticks per second per symbol for a bundled server: the server's own default."""
MAX_PANES = 6
"""Panes at most, from `--modes` or from the add-pane key."""
