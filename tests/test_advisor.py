"""The interval advisor: its figures are theory's and the panes' own, its advice solves theory for
the target, and `+`/`-` on it move the app's interval and the marked point."""

from __future__ import annotations

import asyncio
import io
import math
import time

import httpx
import pytest
from rich.console import Console
from textual.widgets import Static

from tests.helpers import RunningServer, ServerFactory, prices, publish, until
from tui.advisor import AdvisorData, fmt_interval, fmt_per_minute, interval_for_delay, pane_point
from tui.app import POLL_INTERVALS, PushPullApp
from tui.format import fmt_ms, fmt_percent, fmt_ratio
from tui.modes import ConnectionState
from tui.theory import poll_theory
from tui.widgets import AdvisorScreen

WAIT = 30.0


def text_of(widget: Static, width: int = 140) -> str:
    """What a Static shows, as plain text with single spaces."""
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(widget.content)
    return "\n".join(" ".join(line.split()) for line in console.file.getvalue().splitlines())  # type: ignore[attr-defined]


def theory_row(rate: float, interval: float) -> str:
    """The table row the advisor must show for theory at `interval`, from `poll_theory` alone."""
    theory = poll_theory(rate, interval)
    assert theory is not None
    empty = 60 / interval * theory.empty_fraction
    return (
        f"theory, every {interval:g} s {fmt_ms(theory.delay_p50_s * 1000)} "
        f"{fmt_per_minute(empty)} {fmt_ratio(theory.requests_per_update)} {fmt_percent(theory.missed_fraction)}"
    )


# -- the solver -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.5, 2.0, 10.0])
@pytest.mark.parametrize("target_ms", [10.0, 50.0, 100.0, 300.0])
def test_the_interval_for_a_target_gives_that_delay_and_no_longer_one_does(rate: float, target_ms: float) -> None:
    interval = interval_for_delay(rate, target_ms)
    ceiling = math.log(2) / rate * 1000  # where theory's p50 tops out
    if target_ms >= ceiling:
        assert math.isinf(interval)
        return
    at, beyond = poll_theory(rate, interval), poll_theory(rate, interval * 1.001)
    assert at is not None and beyond is not None
    assert at.delay_p50_s * 1000 == pytest.approx(target_ms, rel=1e-9)
    assert beyond.delay_p50_s * 1000 > target_ms


def test_a_target_above_the_ceiling_is_met_at_any_interval() -> None:
    assert math.isinf(interval_for_delay(2.0, 500.0))
    for interval in (*POLL_INTERVALS, 3600.0):
        theory = poll_theory(2.0, interval)
        assert theory is not None and theory.delay_p50_s < 0.5


def test_the_advice_in_words() -> None:
    data = AdvisorData(tick_rate=2.0, poll_interval=0.5, points=())
    fast = interval_for_delay(2.0, 100.0)
    assert data.advice(100.0) == (
        f"to keep poll delay p50 under 100 ms at 2 ticks/s: poll every {fmt_interval(fast)} or less (0.1 s with +/-)"
    )
    assert fmt_interval(fast) == "0.22 s"  # 0.2251 s, rounded down: the advice must hold
    assert (
        data.advice(500.0) == "to keep poll delay p50 under 500 ms at 2 ticks/s: any interval (p50 tops out at 347 ms)"
    )
    assert "no +/- step is that fast" in data.advice(10.0)  # 0.020 s, below the fastest step
    assert "theory needs the tick rate" in AdvisorData(tick_rate=None, poll_interval=0.5, points=()).advice(100.0)


def test_the_news_advice_is_twice_the_target_whatever_the_rate() -> None:
    for rate in (0.5, 2.0, 50.0):
        data = AdvisorData(tick_rate=rate, poll_interval=0.5, points=())
        assert data.news_advice(500.0) == (
            "to learn of a price change within 500 ms (p50): poll every 1 s or less (1 s with +/-)"
        )
        theory = poll_theory(rate, 1.0)
        assert theory is not None and theory.news_delay_p50_s == 0.5
    assert "no +/- step is that fast" in AdvisorData(tick_rate=2.0, poll_interval=0.5, points=()).news_advice(10.0)


def test_the_curve_is_theory_at_every_step_of_the_keys() -> None:
    data = AdvisorData(tick_rate=2.0, poll_interval=0.5, points=())
    curve = data.curve()
    assert [interval for interval, _ in curve] == list(POLL_INTERVALS)
    for interval, figures in curve:
        theory = poll_theory(2.0, interval)
        assert theory is not None
        assert figures.delay_p50_ms == pytest.approx(theory.delay_p50_s * 1000)
        assert figures.empty_per_minute == pytest.approx(60 / interval * theory.empty_fraction)
        assert figures.requests_per_update == pytest.approx(theory.requests_per_update)
        assert figures.missed_fraction == pytest.approx(theory.missed_fraction)
    assert data.current == dict(curve)[0.5]
    assert AdvisorData(tick_rate=None, poll_interval=0.5, points=()).curve() == []


@pytest.mark.parametrize("seconds", [0.0123, 0.2251, 0.5, 1.379, 9.99, 12.7, 150.0])
def test_an_interval_in_words_never_rounds_up(seconds: float) -> None:
    shown = fmt_interval(seconds)
    assert shown.endswith(" s")
    value = float(shown.removesuffix(" s"))
    assert value <= seconds
    assert value >= seconds * 0.9 - 1  # (two figures, or whole seconds from 10 s)


# -- on screen ------------------------------------------------------------------------------------


async def test_the_advisor_shows_theory_at_the_apps_interval_and_moves_with_plus_and_minus(
    server_factory: ServerFactory,
) -> None:
    # A simulated feed: theory takes the simulator's rate, which the server reports.
    fed = server_factory("--tick-rate", "4", "--seed", "11", "--symbols", "SBIN")
    app = PushPullApp(fed.url, symbol="SBIN", modes=["poll", "sse"], poll_interval=0.5, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=(100, 30)) as pilot:
        await until(lambda: app.server_tick_rate == 4.0, pilot=pilot)
        await pilot.press("i")
        await until(lambda: isinstance(app.screen, AdvisorScreen), pilot=pilot)
        screen = app.screen
        assert isinstance(screen, AdvisorScreen)
        assert screen.data is not None and screen.data.tick_rate == 4.0

        def shown() -> str:
            return text_of(screen.summary)

        assert theory_row(4.0, 0.5) in shown()
        # How late a price change is learnt: I/2 whatever the rate, so twice the target.
        assert "to learn of a price change within 500 ms (p50): poll every 1 s or less (1 s with +/-)" in shown()
        assert "to learn of a price change within 100 ms (p50): poll every 0.2 s or less (0.1 s with +/-)" in shown()
        # The age of the ticks a poll brings: never over ln 2 / rate.
        assert "younger: delay p50 under 173 ms at any interval (4 ticks/s)" in shown()

        await pilot.press("plus")
        poll = app.panes[0]
        assert app.poll_interval == 1.0 and poll.client.poll_interval == 1.0
        assert screen.data.poll_interval == 1.0  # the marked point, at once
        assert theory_row(4.0, 1.0) in shown()
        assert "polling every 1 s" in shown()
        await pilot.press("minus", "minus")
        assert app.poll_interval == 0.25 and poll.client.poll_interval == 0.25
        assert screen.data.poll_interval == 0.25
        assert theory_row(4.0, 0.25) in shown()
        await until(lambda: "pane 1 poll every 0.25 s" in shown(), pilot=pilot)

        await pilot.press("i")  # the key that opened it closes it
        await until(lambda: not isinstance(app.screen, AdvisorScreen), pilot=pilot)
        await pilot.press("i")
        await until(lambda: isinstance(app.screen, AdvisorScreen), pilot=pilot)
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, AdvisorScreen), pilot=pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Interval advisor" in titles


async def test_every_panes_measured_point_is_its_own_counters(server: RunningServer) -> None:
    """Scripted ticks on a quiet server, then the panes paused: the counters stand still, and
    the advisor's points must be exactly what they say."""
    app = PushPullApp(
        server.url, modes=["poll", "longpoll", "sse", "ws"], poll_interval=0.25, stats_interval=None, startup_grace=0
    )
    async with asyncio.timeout(WAIT), app.run_test(size=(100, 30)) as pilot:
        panes = app.panes
        await until(lambda: all(p.client.state is ConnectionState.LIVE for p in panes), pilot=pilot)
        async with httpx.AsyncClient() as http:
            ticks = await publish(http, server, "RELIANCE", prices(4))
        last = ticks[-1]["seq"]
        await until(lambda: all(p.client.last_tick and p.client.last_tick.seq == last for p in panes), pilot=pilot)
        poll = panes[0].client
        empties = poll.stats.empty_responses
        await until(lambda: poll.stats.empty_responses >= empties + 3, pilot=pilot)  # 304s: nothing new
        await pilot.press("p")
        await until(lambda: all(p.client.state is ConnectionState.STOPPED for p in panes), pilot=pilot)
        await pilot.press("i")
        await until(lambda: isinstance(app.screen, AdvisorScreen), pilot=pilot)
        screen = app.screen
        assert isinstance(screen, AdvisorScreen) and screen.data is not None
        points = screen.data.points
        assert [(point.number, point.mode) for point in points] == [
            (1, "poll"),
            (2, "longpoll"),
            (3, "sse"),
            (4, "ws"),
        ]
        assert [point.interval for point in points] == [0.25, None, None, None]
        assert [point.figures for point in screen.data.poll_points] == [points[0].figures]
        for pane, point in zip(panes, points, strict=True):
            stats = pane.client.stats
            figures = point.figures
            assert figures.delay_p50_ms == pytest.approx(stats.delay_percentile(0.5), abs=1e-3)
            assert figures.requests_per_update == pytest.approx(stats.requests / stats.updates, abs=1e-3)
            assert figures.missed_fraction == pytest.approx(stats.missed / (stats.updates + stats.missed), abs=1e-4)
        assert poll.stats.empty_responses >= 3
        assert [point.figures.empty_per_minute for point in points[1:]] == [None, None, None]
        shown = text_of(screen.summary)
        for point in points:
            assert f"pane {point.number} {point.mode}" in shown
            assert fmt_ms(point.figures.delay_p50_ms) in shown


async def test_empty_answers_per_minute_agree_with_the_servers_count(server: RunningServer) -> None:
    """Nothing published: every poll after the first is a 304. The pane's figure, counted from its
    receipts, against the server's own count of 304s over the time the test saw them made."""
    app = PushPullApp(server.url, modes=["poll"], poll_interval=0.1, stats_interval=None, startup_grace=0)
    async with asyncio.timeout(WAIT), httpx.AsyncClient() as http:
        before = (await http.get(server.url + "/api/stats")).json()["transports"]["poll"]["empty_responses"]
        started = time.time()
        async with app.run_test(size=(100, 30)) as pilot:
            poll = app.panes[0].client
            await until(lambda: poll.stats.empty_responses >= 25, pilot=pilot)
            figure = pane_point(1, poll).figures.empty_per_minute
            elapsed = time.time() - started
            after = (await http.get(server.url + "/api/stats")).json()["transports"]["poll"]["empty_responses"]
    assert figure is not None
    served_per_minute = (after - before) * 60 / elapsed  # the server's count, over the test's own clock
    assert figure == pytest.approx(served_per_minute, rel=0.3)
