"""The lesson as a picture: the last few seconds, every published tick on one row and, under it,
when one client received each of them, which it never got, and where it asked and got nothing.

Poll's lag shows as its marks sitting to the right of the published ones, its misses as red
crosses, its empty asks as grey dots; a push mode's marks sit right under the published ones.
Pure functions of plain data (no Textual), so a pane, a test or a script can draw one. Pass them
copies (`list(client.events)`): the deques they come from grow on the clients' threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rich.text import Text

from tui.modes import Event

__all__ = ["GLYPHS", "Published", "published_strip", "received_strip", "window_for"]

SECONDS_PER_CELL = 0.25
"""The finest the strip gets: poll's lag at a 0.5 s interval spans a cell or two."""
WINDOW_RANGE = (5.0, 20.0)
"""Seconds shown, whatever the width."""


class Published(NamedTuple):
    """A tick the reference subscriber saw, placed at its publish time (local clock)."""

    at: float
    seq: int


GLYPHS = {
    "published": ("•", "grey82"),
    "received": ("●", "green"),
    "missed": ("✕", "bold red"),
    "empty": ("·", "grey42"),
}
"""What marks each event on a strip, and its style."""
PRIORITY = ("missed", "received", "empty")
"""When two events share a cell, the first of these wins."""


def window_for(width: int) -> float:
    """Seconds a strip of `width` cells shows: as fine as SECONDS_PER_CELL, within WINDOW_RANGE."""
    low, high = WINDOW_RANGE
    return float(max(low, min(high, round(width * SECONDS_PER_CELL))))


def _cell(at: float, now: float, window: float, width: int) -> int | None:
    """The cell an instant falls in (the newest on the right), or None if off the strip."""
    age = now - at
    if width <= 0 or age >= window:
        return None
    if age < 0:  # a hair in the future: clocks read on two threads
        return width - 1
    return width - 1 - int(age / window * width)


def _draw(marks: dict[int, str], width: int) -> Text:
    line = Text(no_wrap=True, overflow="crop")
    for column in range(width):
        kind = marks.get(column)
        if kind is None:
            line.append(" ")
        else:
            glyph, style = GLYPHS[kind]
            line.append(glyph, style)
    return line


def published_strip(published: Iterable[Published], *, now: float, window: float, width: int) -> Text:
    """Every tick published in the window, at its publish time."""
    marks: dict[int, str] = {}
    for tick in published:
        column = _cell(tick.at, now, window, width)
        if column is not None:
            marks[column] = "published"
    return _draw(marks, width)


def received_strip(
    events: Sequence[Event],
    published: Sequence[Published],
    *,
    now: float,
    window: float,
    width: int,
    running_since: float | None,
) -> Text:
    """One client's view: ticks at the time it received them, empty answers, and the ticks
    published while it ran that it never received (at their publish time)."""
    marks: dict[int, str] = {}

    def mark(at: float, kind: str) -> None:
        column = _cell(at, now, window, width)
        if column is None:
            return
        shown = marks.get(column)
        if shown is None or PRIORITY.index(kind) < PRIORITY.index(shown):
            marks[column] = kind

    received: set[int] = set()
    first_this_run: int | None = None
    for event in events:
        if event.empty:
            mark(event.at, "empty")
        else:
            received.add(event.seq)
            if running_since is not None and event.at >= running_since and first_this_run is None:
                first_this_run = event.seq
            mark(event.at, "received")
    if running_since is not None and first_this_run is not None:
        newest = max(received)
        for tick in published:
            # Missed, as the counter counts it: between the first tick this run received and
            # its newest (a newer one may be on its way), published while it ran, never received.
            if first_this_run < tick.seq < newest and tick.at >= running_since and tick.seq not in received:
                mark(tick.at, "missed")
    return _draw(marks, width)
