"""The interval advisor's figures: what polling costs at each interval step, in theory, beside what
every pane measures, and the interval that keeps poll delay under a target.

Pure data, so the screen (`tui.widgets.advisor`) only draws and the tests check the numbers.
Theory is `tui.theory.poll_theory` at the tick rate the app uses for theory; a pane's measured
figures are the export's (`tui.export.pane_figures`), so the advisor, the comparison and an export
agree.

Example:

    data = advisor_data([pane.client for pane in panes], tick_rate=2.0, poll_interval=0.5)
    data.advice(100.0)  # "to keep poll delay p50 under 100 ms at 2 ticks/s: poll every 0.22 s or less ..."
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tui.defaults import POLL_INTERVALS
from tui.export import pane_figures
from tui.format import fmt_ms, fmt_percent, fmt_rate, fmt_ratio
from tui.modes import ModeClient
from tui.theory import poll_beat, poll_theory_over

__all__ = [
    "DELAY_TARGETS_MS",
    "METRICS",
    "AdvisorData",
    "Figures",
    "Metric",
    "PanePoint",
    "advisor_data",
    "fmt_interval",
    "fmt_per_minute",
    "interval_for_delay",
    "pane_point",
    "theory_figures",
]

DELAY_TARGETS_MS = (100.0, 500.0)
"""The poll delays the advisor answers for: near real-time, and "within half a second"."""
SOLVER_RANGE = (1e-6, 1e6)
"""Seconds the solver searches between; beyond the top the delay p50 no longer grows."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What polling costs at one interval: the four figures the advisor plots (None: not known)."""

    delay_p50_ms: float | None
    empty_per_minute: float | None
    """Answers with nothing new (304) per minute."""
    requests_per_update: float | None
    missed_fraction: float | None
    """Of the ticks published, those never seen."""
    news_delay_p50_ms: float | None = None
    """How long after a tick's publication the pane had it or a newer one (theory only: I/2)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One of the advisor's plots: which figure, called what, shown how."""

    title: str
    short: str
    """The table's column heading."""
    name: str
    """The `Figures` field."""
    fmt: Callable[[float | None], str]
    scale: float = 1.0
    """What the figure is multiplied by on the plot's y axis (fractions as percentages)."""


def fmt_per_minute(value: float | None) -> str:
    if value is None or math.isnan(value):
        return fmt_ratio(None)
    return f"{value:.0f}/min" if value >= 10 else f"{value:.1f}/min"


METRICS = (
    Metric("delay p50 (ms)", "delay p50", "delay_p50_ms", fmt_ms),
    Metric("empty answers per minute", "empty/min", "empty_per_minute", fmt_per_minute),
    Metric("requests per update", "req/update", "requests_per_update", fmt_ratio),
    Metric("ticks missed (%)", "missed", "missed_fraction", fmt_percent, scale=100.0),
)


def theory_figures(rate: float | None, interval: float, latency_s: float = 0.0) -> Figures | None:
    """What theory expects of polling every `interval` s at `rate` ticks/s over a link of one-way
    latency `latency_s` (None without a rate): the server sees polls at least a round trip apart
    (the client waits for each answer), and every answer travels `latency_s` more."""
    theory = poll_theory_over(rate, interval, latency_s) if rate else None
    if theory is None:
        return None
    return Figures(
        delay_p50_ms=theory.delay_p50_s * 1000,
        empty_per_minute=60 / poll_beat(interval, latency_s) * theory.empty_fraction,
        requests_per_update=theory.requests_per_update,
        missed_fraction=theory.missed_fraction,
        news_delay_p50_ms=theory.news_delay_p50_s * 1000,
    )


@dataclass(frozen=True, slots=True)
class PanePoint:
    """One pane's measured figures, at the interval it polls at (None for a push mode)."""

    number: int
    mode: str
    interval: float | None
    figures: Figures

    @property
    def label(self) -> str:
        return f"{self.number} {self.mode}"


RATE_WINDOW = 60.0
"""Seconds over which a pane's empty answers per minute are counted."""


def empty_per_minute(client: ModeClient) -> float | None:
    """Empty answers a poll pane received per minute: counted from its receipts over the last
    minute since its counters started, against the time that covers (not inferred from the
    interval: a slow answer, a backoff or a pause makes fewer polls than the beat promises).
    None for a push mode, or before two intervals have passed."""
    if client.mode != "poll":
        return None
    now = client.clock.local()
    events = list(client.events)
    since = max(client.counting_since, now - RATE_WINDOW)
    if events and len(events) == client.events.maxlen:
        since = max(since, events[0].at)  # (older receipts have rolled out: count only what is kept)
    span = now - since
    if span < 2 * client.poll_interval:
        return None
    return sum(1 for event in events if event.empty and event.at >= since) * 60 / span


def pane_point(number: int, client: ModeClient) -> PanePoint:
    """A pane's figures as the comparison and the export have them, and its empty answers per
    minute (`empty_per_minute`)."""
    figures = pane_figures(number, client, client.server_url)
    polls = client.mode == "poll"
    empty = empty_per_minute(client)
    return PanePoint(
        number=number,
        mode=client.mode,
        interval=client.poll_interval if polls else None,
        figures=Figures(
            delay_p50_ms=figures["delay_p50_ms"],
            empty_per_minute=empty,
            requests_per_update=figures["requests_per_update"],
            missed_fraction=figures["missed_fraction"],
        ),
    )


def interval_for_delay(rate: float, target_ms: float, latency_s: float = 0.0) -> float:
    """The longest poll interval whose theoretical delay p50 is at most `target_ms`, at `rate`
    ticks/s; `math.inf` when no interval exceeds it (p50 tops out near ln 2 / rate: a slow poll
    sees only the newest tick, whose age does not grow with the interval).

    The p50 grows with the interval, so a bisection over `poll_theory` finds it (on a log scale:
    the answer may be milliseconds or minutes)."""
    target_s = target_ms / 1000

    def delay(interval: float) -> float:
        theory = theory_figures(rate, interval, latency_s)
        if theory is None or theory.delay_p50_ms is None:
            raise ValueError(f"no theory at {rate} ticks/s")
        return theory.delay_p50_ms / 1000

    low, high = SOLVER_RANGE
    if delay(high) <= target_s:
        return math.inf
    if delay(low) > target_s:
        return 0.0
    for _ in range(200):
        middle = math.sqrt(low * high)
        if delay(middle) <= target_s:
            low = middle
        else:
            high = middle
        if high / low < 1 + 1e-12:
            break
    return low


def fmt_interval(seconds: float) -> str:
    """An interval to two significant figures, rounded down (an advice "or less" must hold)."""
    if seconds >= 10:
        return f"{math.floor(seconds):.0f} s"
    if seconds <= 0:
        return "0 s"
    quantum = 10.0 ** (math.floor(math.log10(seconds)) - 1)
    return f"{math.floor(seconds / quantum + 1e-9) * quantum:.{max(0, 1 - math.floor(math.log10(seconds)))}f} s"


@dataclass(frozen=True, slots=True)
class AdvisorData:
    """Everything the advisor shows: the rate theory uses, the app's interval, every pane's point."""

    tick_rate: float | None
    """Ticks per second theory assumes (the simulator's, or measured); None before it is known."""
    poll_interval: float
    """The app's poll interval: every poll pane's, and the marked point."""
    points: tuple[PanePoint, ...]
    steps: tuple[float, ...] = POLL_INTERVALS
    """The intervals the `+`/`-` keys step through."""
    latency_s: float = 0.0
    """The emulated link's one-way latency (`tui.link`), which every poll's answer travels."""

    @property
    def current(self) -> Figures | None:
        """Theory's figures at the app's interval."""
        return theory_figures(self.tick_rate, self.poll_interval, self.latency_s)

    def curve(self, intervals: Sequence[float] | None = None) -> list[tuple[float, Figures]]:
        """Theory at each of `intervals` (the steps by default); empty without a rate."""
        rate = self.tick_rate
        return [
            (i, figures)
            for i in intervals or self.steps
            if (figures := theory_figures(rate, i, self.latency_s)) is not None
        ]

    @property
    def poll_points(self) -> tuple[PanePoint, ...]:
        return tuple(point for point in self.points if point.interval is not None)

    @property
    def push_points(self) -> tuple[PanePoint, ...]:
        return tuple(point for point in self.points if point.interval is None)

    def interval_for(self, target_ms: float) -> float | None:
        """See `interval_for_delay`; None without a rate."""
        return interval_for_delay(self.tick_rate, target_ms, self.latency_s) if self.tick_rate else None

    def news_advice(self, target_ms: float) -> str:
        """The interval that lets a watcher learn of a price change within `target_ms` (p50), in
        words: twice the target, whatever the tick rate (`tui.theory`: news delay); over a link,
        twice what is left of it after the answer's trip, and no interval at all when a poll's
        round trip alone exceeds it."""
        latency = self.latency_s
        if target_ms / 1000 < 2 * latency:
            return (
                f"to learn of a price change within {fmt_ms(target_ms)} (p50): no poll interval does, over this"
                f" link a poll's round trip alone is {fmt_ms(2000 * latency)} (push: {fmt_ms(1000 * latency)})"
            )
        interval = round(2 * (target_ms / 1000 - latency), 6)
        fitting = [step for step in self.steps if step <= interval * (1 + 1e-9)]
        step = f"{fitting[-1]:g} s with +/-" if fitting else "no +/- step is that fast"
        return (
            f"to learn of a price change within {fmt_ms(target_ms)} (p50): poll every {interval:g} s or less ({step})"
        )

    def advice(self, target_ms: float) -> str:
        """The interval for `target_ms`, in words, with the slowest step that meets it."""
        rate = self.tick_rate
        interval = self.interval_for(target_ms)
        if rate is None or interval is None:
            return f"poll delay under {fmt_ms(target_ms)}: theory needs the tick rate (a few ticks first)"
        head = f"to keep poll delay p50 under {fmt_ms(target_ms)} at {fmt_rate(rate)} ticks/s"
        if math.isinf(interval):
            top = theory_figures(rate, SOLVER_RANGE[1], self.latency_s)
            return f"{head}: any interval (p50 tops out at {fmt_ms(top.delay_p50_ms if top else None)})"
        fitting = [step for step in self.steps if step <= interval]
        step = f"{fitting[-1]:g} s with +/-" if fitting else "no +/- step is that fast"
        return f"{head}: poll every {fmt_interval(interval)} or less ({step})"


def advisor_data(
    clients: Sequence[ModeClient], *, tick_rate: float | None, poll_interval: float, latency_s: float = 0.0
) -> AdvisorData:
    """The advisor's data for the panes' clients (numbered from 1, in order) as they stand now,
    over a link of one-way latency `latency_s` (0: loopback)."""
    return AdvisorData(
        tick_rate=tick_rate,
        poll_interval=poll_interval,
        points=tuple(pane_point(number, client) for number, client in enumerate(clients, start=1)),
        latency_s=latency_s,
    )
