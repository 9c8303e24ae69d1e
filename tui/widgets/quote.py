"""The quote header: one symbol's last price, its move over the session, and when it was set.

One line that shortens as the terminal narrows: the session's high and low go first, then the
tick's time; the symbol, price, change and the SIMULATED label stay.

Example:

    header.show(quote, simulated=True, now=time.time())
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.widgets import Static

from tui.format import fmt_change, fmt_price
from tui.quote import QuoteState, SessionQuote

__all__ = ["IST", "QuoteHeader"]

IST = timezone(timedelta(hours=5, minutes=30), "IST")
"""India Standard Time: a fixed offset (no daylight saving), so no tz database is needed."""

STALE_AFTER = 3.0
"""Seconds without a tick before the header says how old the price is."""

SEPARATOR = "   "


class QuoteHeader(Static):
    """Symbol, last price, change since the session's first tick, high/low, tick time, SIMULATED."""

    DEFAULT_CSS: ClassVar[str] = """
    QuoteHeader { height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: QuoteState | None = None
        self.simulated: bool | None = None
        self.now: float | None = None
        self._shown: tuple[object, ...] | None = None
        """What was drawn last: a repaint that changes nothing draws nothing."""

    def show(self, quote: SessionQuote | QuoteState | None, simulated: bool | None, now: float | None = None) -> None:
        """Show the quote's session; `simulated` True adds the label; `now` (Unix s) ages a quiet quote."""
        self.state = quote.state if isinstance(quote, SessionQuote) else quote
        self.simulated, self.now = simulated, now
        if self.is_mounted:
            self._draw()

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self, event: events.Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or self.app.size.width
        age = None
        state = self.state
        last_time = None if state is None else state.last_time
        if last_time is not None and self.now is not None:
            age = int(self.now - last_time)
            age = age if age >= STALE_AFTER else None
        key = (state, self.simulated, age, width)
        if key == self._shown:
            return
        self._shown = key
        self.update(quote_line(state, self.simulated, width, age), layout=False)  # always one line


def quote_line(state: QuoteState | None, simulated: bool | None, width: int, age_s: int | None = None) -> Text:
    """The header fitted to `width` cells, dropping high/low, then the time, before anything else."""
    simulated_label = Text(" SIMULATED ", "bold black on yellow") if simulated else Text()
    if state is None or state.last is None:
        waiting = Text("waiting for the first tick\u2026", "grey62 italic")
        if state is not None:
            waiting = Text.assemble((state.symbol, "bold"), SEPARATOR, waiting)
        return spread(waiting, simulated_label, width)

    last = state.last
    essentials = Text.assemble((state.symbol, "bold"), SEPARATOR, (fmt_price(last.price), "bold"), SEPARATOR)
    essentials.append_text(change_text(state))
    high_low = Text.assemble(
        SEPARATOR,
        ("high ", "grey62"),
        fmt_price(state.high),
        ("  low ", "grey62"),
        fmt_price(state.low),
    )
    clock = Text(datetime.fromtimestamp(state.last_time or last.ts, IST).strftime("%H:%M:%S IST"), "grey62")
    if age_s is not None:
        clock.append(f" ({age_s} s ago)", "yellow")

    for left, right in (
        (essentials + high_low, [clock, simulated_label]),
        (essentials, [clock, simulated_label]),
        (essentials, [simulated_label]),
    ):
        line = spread(left, join(right), width)
        if line.cell_len <= width:
            return line
    return line


def change_text(state: QuoteState) -> Text:
    change, fraction = state.change, state.change_fraction
    if change is None or fraction is None:
        return Text()
    shown = f"{fmt_change(change)} ({fraction * 100:+.2f}%)"
    if round(change, 2) > 0:
        return Text("\u25b2 " + shown, "green")
    if round(change, 2) < 0:
        return Text("\u25bc " + shown, "red")
    return Text("  " + shown, "grey62")


def join(parts: list[Text]) -> Text:
    return Text("  ").join(part for part in parts if part)


def spread(left: Text, right: Text, width: int) -> Text:
    """`left` at the start, `right` at the end, one line that never wraps (an ellipsis if it must)."""
    gap = max(len(SEPARATOR), width - left.cell_len - right.cell_len) if right else 0
    return Text.assemble(left, " " * gap, right, no_wrap=True, overflow="ellipsis", end="")
