"""The comparison across panes, the lesson at a glance: one line per pane, a bar per metric.

Each metric's bars are coloured best (green) to worst (red) across the panes shown; under a poll
pane a dim line says what theory expects at the feed's tick rate, so measured and expected sit
side by side. Bars shrink with the width (at least `MIN_BAR` cells) so 80 columns still fit.

Example:

    comparison.show([ComparisonRow(1, client, focused=True)], tick_rate=2.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.widgets import Static

from tui.format import fmt_bytes, fmt_ms, fmt_percent, fmt_rate, fmt_ratio
from tui.modes import ModeClient
from tui.theory import mode_theory

__all__ = ["Comparison", "ComparisonRow"]

MIN_BAR = 3
"""Cells a bar never shrinks below."""
WIDE = 150
"""From this width on, each pane also names its mode in words and theory says what it assumed."""
GAP = 2
"""Spaces between columns."""
DELAY_LOG_RANGE_MS = (1.0, 10_000.0)
"""The delay bar's log scale: push is about a millisecond, polling hundreds, a stall seconds."""

BEST, MIDDLE, WORST = "green", "yellow", "red"
TRACK = "grey30"
THEORY = "grey62 italic"
THEORY_BAR = "grey50"
FOCUS_MARK = "\u25b8"


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One pane as the comparison shows it."""

    number: int
    """The pane's number, 1-based, as on its key."""
    client: ModeClient
    focused: bool = False


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    value_width: int
    """Cells kept for the value, so columns stay put as figures change."""
    fmt: Callable[[float | None], str]
    relative: bool
    """Bars scaled to the largest value shown (else `fraction` maps a value onto 0..1 alone)."""
    fraction: Callable[[float], float] = lambda value: value
    hint: str = ""
    """Said beside the label when the column has room: how to read the bar."""


def log_fraction(value_ms: float) -> float:
    low, high = DELAY_LOG_RANGE_MS
    return math.log10(max(value_ms, low) / low) / math.log10(high / low)


METRICS: tuple[Metric, ...] = (
    Metric("delay p50", 7, fmt_ms, relative=False, fraction=log_fraction, hint="log 1 ms\u201310 s"),
    Metric("req/upd", 5, fmt_ratio, relative=True, hint="bar: vs worst"),
    Metric("wire/upd", 6, fmt_bytes, relative=True, hint="bytes both ways; bar: vs worst"),
    Metric("missed", 5, fmt_percent, relative=False, hint="of published"),
)


def measured(client: ModeClient) -> tuple[float | None, ...]:
    """Delay p50 (ms), requests and bytes per update, missed fraction; None before there is any."""
    stats = client.stats
    seen = stats.updates + stats.missed
    return (
        known(stats.delay_percentile(0.5)),
        known(stats.requests_per_update),
        known(stats.wire_bytes_per_update),
        stats.missed / seen if seen else None,
    )


def theory_shown(mode: str, latency_s: float) -> bool:
    """Whether theory has a row under a pane of `mode`: on loopback only polling's (push is a
    millisecond, nothing to learn from a row of zeros); over a link of latency, every mode's."""
    return mode == "poll" or latency_s > 0


def expected(client: ModeClient, tick_rate: float | None, latency_s: float = 0.0) -> tuple[float | None, ...] | None:
    """What theory says a pane should measure (`tui.theory.mode_theory`), or None when it has
    nothing to say (no rate yet, or `theory_shown` says no row)."""
    if not tick_rate or not theory_shown(client.mode, latency_s):
        return None
    theory = mode_theory(client.mode, tick_rate, interval=client.poll_interval, latency_s=latency_s)
    if theory is None:
        return None
    delay = theory.delay_p50_s * 1000 if theory.delay_p50_s is not None else None
    return (delay, theory.requests_per_update, None, theory.missed_fraction)


def known(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True, slots=True)
class Cell:
    value: str
    fill: float | None
    """Bar fill, 0..1; None: no bar (nothing measured yet)."""
    style: str


@dataclass(frozen=True, slots=True)
class Line:
    name: Text
    cells: tuple[Cell, ...]
    theory: bool = False


def rank_styles(values: Sequence[float | None], metric: Metric) -> list[str]:
    """Green for the best (lowest), red for the worst, yellow between; equal as shown, equal colour."""
    shown = {metric.fmt(value): value for value in values if value is not None}
    order = sorted(set(shown), key=lambda text: shown[text])
    styles: list[str] = []
    for value in values:
        if value is None:
            styles.append("")
            continue
        place = order.index(metric.fmt(value))
        styles.append(BEST if place == 0 else WORST if place == len(order) - 1 else MIDDLE)
    return styles


def build_lines(
    rows: Sequence[ComparisonRow],
    tick_rate: float | None,
    *,
    wide: bool,
    accent: str = "yellow",
    latency_s: float = 0.0,
) -> tuple[Line, ...]:
    """The figures of every pane (and theory's under it, see `expected`), ranked and scaled for bars."""
    figures = [measured(row.client) for row in rows]
    theories = [expected(row.client, tick_rate, latency_s) for row in rows]
    number_width = max((len(str(row.number)) for row in rows), default=1)
    mode_width = max((len(row.client.mode) for row in rows), default=4)
    columns: list[list[Cell]] = [[] for _ in rows]
    theory_columns: list[list[Cell]] = [[] for _ in rows]
    for index, metric in enumerate(METRICS):
        values = [figure[index] for figure in figures]
        theory_values = [theory[index] if theory else None for theory in theories]
        largest = max((value for value in (*values, *theory_values) if value is not None), default=0.0)

        def fill(value: float | None, metric: Metric = metric, largest: float = largest) -> float | None:
            if value is None:
                return None
            raw = (value / largest if largest > 0 else 0.0) if metric.relative else metric.fraction(value)
            return round(min(1.0, max(0.0, raw)), 3)

        for row_index, (value, style) in enumerate(zip(values, rank_styles(values, metric), strict=True)):
            columns[row_index].append(Cell(metric.fmt(value), fill(value), style))
            theory_value = theory_values[row_index]
            theory_columns[row_index].append(
                Cell(metric.fmt(theory_value) if theory_value is not None else "", fill(theory_value), THEORY_BAR)
            )
    lines: list[Line] = []
    for row, cells, theory, theory_cells in zip(rows, columns, theories, theory_columns, strict=True):
        client = row.client
        name = Text.assemble(
            (FOCUS_MARK if row.focused else " ", f"bold {accent}" if row.focused else ""),
            " ",
            (f"{row.number:>{number_width}} ", "grey62"),
            (client.mode, "bold" if row.focused else ""),
        )
        if wide:
            name.append(" " * (mode_width - len(client.mode) + 2) + client.title, "grey62")
        lines.append(Line(name, tuple(cells)))
        if theory is not None:
            label = Text(" " * (2 + number_width) + "\u2514 theory", THEORY)
            if wide and tick_rate:
                beat = f", every {client.poll_interval:g} s" if client.mode == "poll" else ""
                over = f", {latency_s * 1000:g} ms link" if latency_s > 0 else ""
                label.append(f"  {fmt_rate(tick_rate)} ticks/s{beat}{over}", THEORY)
            lines.append(Line(label, tuple(theory_cells), theory=True))
    return tuple(lines)


def bar(fill: float | None, width: int, style: str) -> Text:
    """A bar of whole cells on a dim track; a value above zero too small for a cell shows a stub."""
    if fill is None:
        return Text(" " * width)
    cells = round(fill * width)
    head = "\u2501" * cells if cells or fill == 0 else "\u2578"
    return Text.assemble((head, style), ("\u2501" * (width - len(head)), TRACK))


def lay_out(lines: Sequence[Line], width: int) -> Text:
    """The header and the lines, fitted to `width` cells."""
    name_width = max([len("  # mode"), *(line.name.cell_len for line in lines)])
    value_widths = [
        max([metric.value_width, *(len(line.cells[index].value) for line in lines)])
        for index, metric in enumerate(METRICS)
    ]
    fixed = name_width + GAP + sum(value_width + 1 for value_width in value_widths) + GAP * (len(METRICS) - 1)
    bar_width = max(MIN_BAR, (width - fixed) // len(METRICS))
    column_widths = [bar_width + 1 + value_width for value_width in value_widths]

    header = Text("  # mode".ljust(name_width + GAP), "grey62")
    for metric, column_width in zip(METRICS, column_widths, strict=True):
        label = Text(metric.label, "bold")
        if metric.hint and len(metric.label) + 2 + len(metric.hint) <= column_width:
            label.append("  " + metric.hint, "grey50")
        label.pad_right(column_width - label.cell_len + GAP)
        header.append_text(label)
    header.rstrip()

    out = Text(no_wrap=True, overflow="ellipsis", end="")
    out.append_text(header)
    for line in lines:
        out.append("\n")
        out.append_text(line.name)
        out.append(" " * (name_width - line.name.cell_len + GAP))
        for index, (cell, value_width) in enumerate(zip(line.cells, value_widths, strict=True)):
            if index:
                out.append(" " * GAP)
            if line.theory and not cell.value:
                out.append(" " * (bar_width + 1 + value_width))
                continue
            out.append_text(bar(cell.fill, bar_width, cell.style))
            out.append(" ")
            out.append(cell.value.rjust(value_width), THEORY if line.theory else "")
    out.rstrip()
    return out


class Comparison(Static):
    """Delay, requests and bytes per update, and misses, for every pane side by side, as bars."""

    DEFAULT_CSS: ClassVar[str] = """
    Comparison { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: Sequence[ComparisonRow] = ()
        self.tick_rate: float | None = None
        self.latency_s = 0.0
        """The emulated link's one-way latency theory assumes (0: loopback)."""
        self.lines: tuple[Line, ...] = ()
        self._drawn: Text | None = None
        """What is on screen: a repaint that would draw the same cells draws nothing."""

    def show(self, rows: Sequence[ComparisonRow], tick_rate: float | None, latency_s: float = 0.0) -> None:
        """Show these panes; `tick_rate` (ticks/s published) lets theory speak under poll panes,
        and under every pane over a link of one-way latency `latency_s`."""
        self.rows, self.tick_rate, self.latency_s = rows, tick_rate, latency_s
        if self.is_mounted:
            self._draw()

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self, event: events.Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or self.app.size.width
        accent = self.app.theme_variables.get("accent", "yellow")
        self.lines = build_lines(self.rows, self.tick_rate, wide=width >= WIDE, accent=accent, latency_s=self.latency_s)
        drawing = lay_out(self.lines, width) if self.lines else Text("no panes", "grey50")
        if drawing != self._drawn:
            same_height = self._drawn is not None and len(self._drawn.split()) == len(drawing.split())
            self._drawn = drawing
            self.update(drawing, layout=not same_height)  # relayout only when lines come or go
