"""The app on screens of every common size, and the rules its figures follow, driven by keys and
the mouse as a user would."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Static

from tests.helpers import RunningServer, ServerFactory, prices, publish, until
from tui.app import POLL_INTERVALS, PushPullApp, next_poll_interval
from tui.modes import ConnectionState
from tui.widgets import Comparison, KeyBar, Pane, PaneDetail, PaneDetailScreen, QuoteHeader

SIZES = [(80, 24), (100, 30), (120, 35), (160, 45), (200, 55)]
FOUR = ["poll", "longpoll", "sse", "ws"]
SIX = ["poll", "longpoll", "sse", "ws", "webhook", "poll"]
"""Six panes, the most there can be (four at every size are in the snapshots too)."""
WAIT = 30.0


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text at its width."""
    console = Console(file=io.StringIO(), width=max(widget.size.width, 20), color_system=None)
    console.print(widget.content)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def inside(widget_region: object, screen_region: object) -> bool:
    from textual.geometry import Region

    assert isinstance(widget_region, Region) and isinstance(screen_region, Region)
    return widget_region.area > 0 and screen_region.contains_region(widget_region)


@pytest.mark.parametrize(
    ("size", "modes"),
    [(size, SIX) for size in SIZES] + [((120, 35), FOUR), ((200, 55), FOUR)],
    ids=[f"{w}x{h}-6" for w, h in SIZES] + ["120x35-4", "200x55-4"],
)
async def test_every_pane_the_comparison_and_the_keys_are_on_screen(
    shared_server: RunningServer, size: tuple[int, int], modes: list[str]
) -> None:
    app = PushPullApp(shared_server.url, modes=modes, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=size) as pilot:
        await until(lambda: all(p.client.last_tick is not None for p in app.panes[:4]), pilot=pilot)  # drawn with data
        await pilot.pause()
        screen = app.screen.region
        for pane in app.panes:
            assert inside(pane.region, screen), (size, pane.number, pane.region)
        for widget in (app.query_one(Comparison), app.query_one(QuoteHeader), app.query_one(KeyBar)):
            assert inside(widget.region, screen), (size, widget)
        bar = app.query_one(KeyBar)
        shown = {hint.description for hint in bar.fitting(size[0] - 2)}
        assert {"Help", "Quit", "Focus", "Mode", "Watchlist", "Pause"} <= shown  # the least important go first
        if size[0] >= 160:
            assert len(shown) >= len(bar.hints) - 1  # wide: every key shows (the palette may not)
        detail = app.query_one("#pane-detail", PaneDetail)
        if app.card_columns == 0 and detail.display:  # rows: the focused pane's every counter below
            assert inside(detail.region, screen)
            assert detail.region.height >= 5, (size, detail.region)
            assert "gaps" in text_of(detail)
        await pilot.press("enter")  # and at any size, every counter of the focused pane on demand
        dialog = app.screen
        assert isinstance(dialog, PaneDetailScreen)
        assert inside(dialog.detail.region, screen)
        assert "gaps" in text_of(dialog.detail) and "wire/update" in text_of(dialog.detail)
        await pilot.press("escape")
        assert not isinstance(app.screen, PaneDetailScreen)


async def test_a_click_focuses_a_pane(shared_server: RunningServer) -> None:
    app = PushPullApp(shared_server.url, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        third = app.panes[2]
        assert app.focused is not third
        await pilot.click(Pane, offset=(third.region.x - app.panes[0].region.x + 2, 2))
        assert app.focused is third


async def test_the_focused_pane_stays_marked_while_a_window_is_over_it(shared_server: RunningServer) -> None:
    """Help or a pane's details over the screen: behind it, the second pane stays the marked one,
    in its row, in the comparison and in the counters below (they showed the first pane)."""
    app = PushPullApp(shared_server.url, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=(80, 24)) as pilot:
        await until(lambda: all(p.client.last_tick is not None for p in app.panes), pilot=pilot)
        await pilot.press("tab")
        second = app.panes[1]
        assert app.focused is second
        detail = app.query_one("#pane-detail", PaneDetail)
        for key in ("question_mark", "enter"):
            await pilot.press(key)
            assert app.screen is not app.screen_stack[0]
            assert app.focused_pane is second
            app.repaint()
            await pilot.pause()
            assert Text.from_markup(str(detail.border_title)).plain.startswith("2 "), detail.border_title
            assert second.marked and not app.panes[0].marked
            await pilot.press("escape")
            assert app.focused is second


async def test_pause_then_resume_counts_the_backlog_as_replayed_and_poll_misses_nothing(
    shared_server: RunningServer, own_symbol: str
) -> None:
    server = shared_server
    app = PushPullApp(
        server.url, symbol=own_symbol, modes=["poll", "sse"], poll_interval=0.05, stats_interval=None, startup_grace=0
    )
    async with asyncio.timeout(WAIT), app.run_test(size=(160, 45), notifications=True) as pilot:
        poll, sse = app.panes
        await until(lambda: all(p.client.state is ConnectionState.LIVE for p in app.panes), pilot=pilot)
        await pilot.press("p")
        await until(lambda: all(p.client.state is ConnectionState.STOPPED for p in app.panes), pilot=pilot)
        async with httpx.AsyncClient() as http:
            stored = await publish(http, server, own_symbol, prices(12, 1500.0))
        await pilot.press("p")
        newest = stored[-1]["seq"]
        await until(lambda: all(p.client.cursor == newest for p in app.panes), pilot=pilot)
        assert sse.client.stats.replayed == 12
        assert len(sse.client.stats.delays_ms) == 0  # the backlog's age is the pause, not a delay
        assert poll.client.stats.missed == 0  # what was published while paused is not a miss
        assert "replayed" in dict(pane_counters(sse))


def pane_counters(pane: Pane) -> list[tuple[str, str]]:
    from tui.widgets.pane import counter_rows

    return counter_rows(pane.client)


async def test_polling_every_100_ms_shows_more_wire_bytes_per_update_than_sse(server_factory: ServerFactory) -> None:
    fed = server_factory("--tick-rate", "2", "--seed", "9", "--symbols", "SBIN")
    app = PushPullApp(fed.url, symbol="SBIN", modes=["poll", "sse"], poll_interval=0.1, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=(160, 45)) as pilot:
        poll, sse = app.panes
        await until(lambda: poll.client.stats.updates >= 4 and sse.client.stats.updates >= 4, pilot=pilot)
        assert poll.client.stats.wire_bytes_per_update > 3 * sse.client.stats.wire_bytes_per_update
        counters = dict(pane_counters(poll))
        assert "wire/update" in counters and "payload" in counters


def test_the_interval_keys_step_the_right_way_from_any_value() -> None:
    low, high = POLL_INTERVALS[0], POLL_INTERVALS[-1]
    assert next_poll_interval(high, 1) == high and next_poll_interval(low, -1) == low
    assert next_poll_interval(100.0, -1) == high  # from outside the steps, towards them
    assert next_poll_interval(0.01, 1) == low
    assert next_poll_interval(0.3, 1) == 0.5 and next_poll_interval(0.3, -1) == 0.25
    for step in POLL_INTERVALS[1:-1]:
        assert next_poll_interval(step, 1) > step > next_poll_interval(step, -1)


async def test_the_app_keeps_up_with_a_fast_feed(server_factory: ServerFactory) -> None:
    """300 ticks/s, repainting as fast as it can: every push pane gets every tick, and drawing the
    timelines from the clients' ever-growing deques never fails (run_test re-raises any error)."""
    fast = server_factory("--tick-rate", "300", "--seed", "4", "--symbols", "TCS")
    app = PushPullApp(fast.url, symbol="TCS", stats_interval=None, refresh_interval=0.01)
    async with asyncio.timeout(WAIT), app.run_test(size=(160, 45)) as pilot:
        await until(lambda: all(p.client.stats.updates >= 450 for p in app.panes if p.mode != "poll"), pilot=pilot)
        for pane in app.panes:
            if pane.mode != "poll":
                assert pane.client.stats.missed == 0, pane.mode


async def test_resizing_switches_between_rows_and_cards_at_once(shared_server: RunningServer) -> None:
    app = PushPullApp(shared_server.url, stats_interval=None)
    async with asyncio.timeout(WAIT), app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.card_columns == 0
        for size, cards in (((160, 45), True), ((80, 24), False), ((200, 55), True)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            assert (app.card_columns > 0) is cards, size
            screen = app.screen.region
            for pane in app.panes:
                assert inside(pane.region, screen), (size, pane.number, pane.region)
            assert inside(app.query_one(KeyBar).region, screen), size
