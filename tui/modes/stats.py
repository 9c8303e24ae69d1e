"""The one stats object every mode client fills: what the update cost, and how late it was."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["DELAY_WINDOW", "ModeStats", "percentile"]

DELAY_WINDOW = 500
"""Delays kept for the rolling percentiles a pane shows."""


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (exact, no interpolation)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(slots=True)
class ModeStats:
    """Counters of one client. `missed` counts seq numbers skipped over (polling skips by design)."""

    updates: int = 0
    """Distinct ticks received."""
    missed: int = 0
    """Ticks published that this client never received (gaps in seq within one epoch)."""
    duplicates: int = 0
    """Ticks received again (same epoch and seq)."""
    requests: int = 0
    """HTTP requests made, or connections opened by a push mode."""
    empty_responses: int = 0
    """Answers with no new tick: 304 (poll), 204 (long poll)."""
    bytes_received: int = 0
    """Payload bytes received (bodies, events, frames), without HTTP/TCP framing."""
    wire_bytes_sent: int = 0
    """Bytes this client put on the connection: request lines, headers, bodies, frames."""
    wire_bytes_received: int = 0
    """Bytes the server put on the connection: status lines, headers, bodies, framing
    (see `tui.modes.wire` for what is counted)."""
    reconnects: int = 0
    open_connections: int = 0
    gaps: int = 0
    """Times the server said history could not be resumed (gap signal or a new epoch)."""
    rejected: int = 0
    """Deliveries refused by this client (webhook: bad signature, stale, replayed)."""
    replayed: int = 0
    """Ticks published while paused and delivered on resume: updates, but their age is the
    pause, not the mode's delay, so they are kept out of the delay figures."""
    last_delay_ms: float | None = None
    delays_ms: deque[float] = field(default_factory=lambda: deque(maxlen=DELAY_WINDOW))
    """Recent delays, for rolling percentiles."""
    all_delays_ms: list[float] | None = None
    """Every delay, kept only when asked (the bench's exact percentiles)."""

    def record_delay(self, delay_ms: float) -> None:
        self.last_delay_ms = delay_ms
        self.delays_ms.append(delay_ms)
        if self.all_delays_ms is not None:
            self.all_delays_ms.append(delay_ms)

    def delay_percentile(self, fraction: float) -> float:
        """Rolling-window percentile in ms (NaN before the first update)."""
        return percentile(sorted(self.delays_ms), fraction)

    @property
    def requests_per_update(self) -> float:
        return self.requests / self.updates if self.updates else math.nan

    @property
    def bytes_per_update(self) -> float:
        return self.bytes_received / self.updates if self.updates else math.nan

    @property
    def wire_bytes(self) -> int:
        """Both ways."""
        return self.wire_bytes_sent + self.wire_bytes_received

    @property
    def wire_bytes_per_update(self) -> float:
        return self.wire_bytes / self.updates if self.updates else math.nan

    def reset(self) -> None:
        """Zero every counter; open connections stay as they are (they are a level, not a count)."""
        open_connections = self.open_connections
        keep_all = self.all_delays_ms is not None
        fresh = ModeStats(open_connections=open_connections, all_delays_ms=[] if keep_all else None)
        for name in self.__slots__:
            setattr(self, name, getattr(fresh, name))
