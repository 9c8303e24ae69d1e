"""The interval advisor: how polling's costs move with the poll interval, and where the panes are.

Four plots on a log interval axis (delay p50, empty answers per minute, requests per update,
ticks missed): theory's curve at the tick rate the app uses, the app's interval marked on it, each
poll pane's measured point, and on the delay plot the push modes' delays for reference. Above
them, in words, the interval that keeps poll delay under each of `DELAY_TARGETS_MS`, and a table
of the figures. `+`/`-` change the app's interval (every poll pane's), as on the main screen.

The plots are `textual-plotext`'s (plotext drawn into a widget): it follows the app's theme and
renders the same cells for the same data, so the screen can be pinned by a snapshot.

Example:

    app.push_screen(AdvisorScreen(lambda: advisor_data(clients, tick_rate=2.0, poll_interval=0.5)))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.containers import Grid, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.advisor import DELAY_TARGETS_MS, METRICS, SOLVER_RANGE, AdvisorData, Figures, Metric, theory_figures
from tui.format import fmt_ms, fmt_rate

__all__ = ["AdvisorScreen"]

CURVE_POINTS = 60
"""Intervals theory's line is drawn through (log-spaced over the steps)."""
THEORY, NOW, MEASURED, PUSH, NEWS = "#4fc3f7", "#ffd54f", "#81c784", "#f06292", "#b39ddb"
"""Plot colours, also the table's labels: the table is the legend."""
X_TICKS = (0.05, 0.5, 5.0, 60.0)
"""Interval labels under each plot (seconds): a decade apart, so they fit at 50 columns."""
DELAY_FLOOR_MS = 0.5
"""Lowest delay on the delay plot's log axis (push modes are about a millisecond)."""
DELAY_TICKS_MS = (1.0, 100.0, 10_000.0)
"""Two decades apart: at a plot's few rows, plotext drops or shifts labels set closer."""


class AdvisorScreen(Screen[None]):
    """The advisor over the app; `data` is called for fresh figures each second and after `+`/`-`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "poll_interval(1)", "Slower poll"),
        Binding("minus", "poll_interval(-1)", "Faster poll"),
        Binding("escape,q,i", "dismiss", "Close"),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    AdvisorScreen #advisor-summary { padding: 0 1; height: auto; }
    AdvisorScreen #advisor-plots { grid-size: 2 2; height: 1fr; min-height: 18; }
    AdvisorScreen PlotextPlot { height: 1fr; min-height: 9; }
    AdvisorScreen #advisor-keys { dock: bottom; height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, data: Callable[[], AdvisorData], refresh_interval: float = 1.0) -> None:
        super().__init__()
        self.source = data
        self.refresh_interval = refresh_interval
        self.data: AdvisorData | None = None
        """What the screen shows now."""
        self.summary = Static(id="advisor-summary")
        self.plots = [PlotextPlot(id=f"advisor-{metric.name.replace('_', '-')}") for metric in METRICS]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield self.summary
            with Grid(id="advisor-plots"):
                yield from self.plots
        keys = Text.assemble(
            ("+ -", "bold"),
            " interval  ",
            ("Esc", "bold"),
            " close  ",
            ("\u2500", THEORY),
            " theory ",
            ("\u2502\u25cf", NOW),
            " now ",
            ("\u25c6", MEASURED),
            " poll panes ",
            ("\u2500", PUSH),
            " push ",
            ("\u2500", NEWS),
            " news delay",
        )
        yield Static(keys, id="advisor-keys")

    def on_mount(self) -> None:
        self.show()
        self.set_interval(self.refresh_interval, self.show)

    async def action_poll_interval(self, step: int) -> None:
        """The app's own `+`/`-`, then the figures at once (not at the next beat)."""
        await self.run_action(f"app.poll_interval({step})")
        self.show()

    def show(self) -> None:
        data = self.source()
        self.data = data
        self.summary.update(summary(data))
        for plot, metric in zip(self.plots, METRICS, strict=True):
            draw(plot, metric, data)


def summary(data: AdvisorData) -> Table:
    """The heading, the advice in words and the figures: theory's at the app's interval, each pane's."""
    rate = data.tick_rate
    heading = Text.assemble(
        ("Interval advisor", "bold"),
        f" \u00b7 polling every {data.poll_interval:g} s \u00b7 ",
        f"theory at {fmt_rate(rate)} ticks/s" if rate else "no tick rate yet: theory waits for a few ticks",
    )
    table = Table(box=None, padding=(0, 0, 0, 3), show_edge=False, pad_edge=False)
    table.add_column(no_wrap=True)
    for metric in METRICS:
        table.add_column(Text(metric.short, "dim"), justify="right", no_wrap=True)
    table.add_row(Text(f"theory, every {data.poll_interval:g} s", THEORY), *cells(data.current))
    for point in data.points:
        where = f" every {point.interval:g} s" if point.interval is not None else ""
        table.add_row(Text(f"pane {point.label}{where}", MEASURED if point.interval else PUSH), *cells(point.figures))
    grid = Table.grid()
    grid.add_row(heading)
    for target in reversed(DELAY_TARGETS_MS):
        grid.add_row(data.news_advice(target))
    grid.add_row(Text(younger(data), "dim"))
    grid.add_row(table)
    return grid


def younger(data: AdvisorData) -> str:
    """The age of the ticks a poll brings, beside how late it learns of a change: the first stays
    under ln 2 / rate at any interval (a poll brings only the newest tick)."""
    rate, target = data.tick_rate, DELAY_TARGETS_MS[-1]
    interval = data.interval_for(target)
    ceiling = theory_figures(rate, SOLVER_RANGE[1], data.latency_s) if rate else None
    if interval is not None and math.isinf(interval) and ceiling is not None:
        return (
            f"the ticks a poll brings are younger: delay p50 under {fmt_ms(ceiling.delay_p50_ms)} "
            f"at any interval ({fmt_rate(rate or 0)} ticks/s)"
        )
    return data.advice(target)


def cells(figures: Figures | None) -> list[str]:
    return [metric.fmt(getattr(figures, metric.name) if figures else None) for metric in METRICS]


def value(figures: Figures, metric: Metric) -> float | None:
    """A figure where the plot's y axis puts it: scaled, and the delay as log10 of ms (None: no figure)."""
    raw: float | None = getattr(figures, metric.name)
    if raw is None or math.isnan(raw):
        return None
    scaled = raw * metric.scale
    return math.log10(max(scaled, DELAY_FLOOR_MS)) if metric.name == "delay_p50_ms" else scaled


def nice_ticks(top: float, count: int = 3) -> list[float]:
    """Round ticks from 0 to at least `top`: steps of 1, 2 or 5 times a power of ten."""
    raw = max(top, 1e-9) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * k for k in range(math.ceil(top / step - 1e-9) + 1)]


def draw(widget: PlotextPlot, metric: Metric, data: AdvisorData) -> None:
    """One metric against the poll interval: theory's line, the app's interval, the panes.

    Both log axes are drawn as log10 of the value with labels at round values (plotext's own log
    scale does not take limits and ticks in the values' units)."""
    plt = widget.plt
    plt.clear_figure()
    plt.title(metric.title)
    low, high = data.steps[0], data.steps[-1]
    plt.xlim(math.log10(low), math.log10(high))
    plt.xticks([math.log10(tick) for tick in X_TICKS], [f"{tick:g} s" for tick in X_TICKS])
    ratio = (high / low) ** (1 / (CURVE_POINTS - 1))
    line = [
        (math.log10(interval), y)
        for interval, figures in data.curve([low * ratio**k for k in range(CURVE_POINTS)])
        if (y := value(figures, metric)) is not None
    ]
    ys = [y for _, y in line]
    if line:
        plt.plot([x for x, _ in line], ys, marker="braille", color=rgb(THEORY))
    if metric.name == "delay_p50_ms":  # and how late a price change is learnt: I/2, whatever the rate
        news = [(math.log10(i), math.log10(max(f.news_delay_p50_ms or 0, DELAY_FLOOR_MS))) for i, f in data.curve()]
        if news:
            plt.plot([x for x, _ in news], [y for _, y in news], marker="braille", color=rgb(NEWS))
            ys.extend(y for _, y in news)
    now = math.log10(data.poll_interval)
    plt.vline(now, color=rgb(NOW))
    # The measured points last: where one falls on theory at the marked interval, it shows.
    if (current := data.current) is not None and (y := value(current, metric)) is not None:
        plt.scatter([now], [y], marker="\u25cf", color=rgb(NOW))
    for point in data.poll_points:
        if point.interval is not None and (y := value(point.figures, metric)) is not None:
            plt.scatter([math.log10(point.interval)], [y], marker="\u25c6", color=rgb(MEASURED))
            ys.append(y)
    if metric.name == "delay_p50_ms":
        for point in data.push_points:
            if (y := value(point.figures, metric)) is not None:
                plt.hline(y, color=rgb(PUSH))
                ys.append(y)
        top = max([*ys, 2.0])  # (log10 ms: 100 ms at least)
        ticks = [tick for tick in DELAY_TICKS_MS if math.log10(tick) <= top + 0.2]
        plt.yticks([math.log10(tick) for tick in ticks], [fmt_delay_tick(tick) for tick in ticks])
        plt.ylim(math.log10(DELAY_FLOOR_MS), top + 0.2)
    else:
        ticks = nice_ticks(max([*ys, 1.0]))
        plt.yticks(ticks, [f"{tick:g}" for tick in ticks])
        plt.ylim(0, ticks[-1])
    widget.refresh()


def fmt_delay_tick(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def rgb(colour: str) -> tuple[int, int, int]:
    """A `#rrggbb` colour as plotext takes it (a named one would go through the terminal's palette,
    and no longer match the legend)."""
    red, green, blue = Color.parse(colour).rgb
    return red, green, blue
