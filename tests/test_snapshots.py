"""What a user sees, pinned: the default panes with data at 80x24, 100x30 and 160x45, a mode switch,
every counter of a pane, help, an unreachable server, a webhook pane.

Deterministic by construction: a fresh quiet server (no simulator) per picture, so every picture
has the same seq numbers whatever ran first; scripted ticks, a poll interval longer than the test,
a client clock whose delays are fixed and a wall clock that does not move (so ages read 0 and the
timelines hold only what arrived "now"), no server-stats line, a fixed terminal size. The server runs on a
free port, so the server bar names it `SERVER_NAME` instead of showing its URL. Update with
`pytest --snapshot-update` only after looking at the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from tests.helpers import RunningServer, publish, publish_sync, start_server, until
from tui.alerts import parse_rule
from tui.app import PushPullApp
from tui.link import PROFILES
from tui.modes import Backoff, ConnectionState, ServerClock
from tui.widgets import HelpScreen, PaneDetailScreen, WatchlistScreen

SIZES = [(80, 24), (100, 30), (160, 45)]
"""The default terminal, a common small one, and one where the panes are cards side by side."""
SIZE = (160, 45)
FROZEN = 1_800_000_000.0
SERVER_NAME = "http://127.0.0.1:PORT"
"""What the server bar shows instead of the server's URL, whose port changes from run to run."""
UNREACHABLE = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so connecting is refused at once."""
OPENING_PRICES = [1312.45, 1313.10, 1312.80]
LIVE_PRICES = [1313.55, 1314.20, 1313.95, 1314.60, 1315.05, 1314.75]
WAIT = 20.0


class FrozenClock(ServerClock):
    """Delays fixed at 12.5 ms and a local clock that does not move: the screen cannot drift."""

    def __init__(self) -> None:
        super().__init__(local=lambda: FROZEN)

    def delay_ms(self, published_at: float) -> float:
        return 12.5


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    """A fresh server per test, so every picture has the same seq numbers whatever runs first."""
    with start_server("--no-feed", "--symbols", "RELIANCE,TCS") as server:
        yield server


def make_app(url: str, server_name: str | None = SERVER_NAME, **options: Any) -> PushPullApp:
    return PushPullApp(
        url,
        poll_interval=60.0,
        refresh_interval=0.05,
        stats_interval=None,
        clock=FrozenClock(),
        seed=7,
        server_name=server_name,
        wall_clock=lambda: FROZEN,
        startup_grace=0,
        **options,
    )


async def shown_once(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    """Until the clients' state satisfies `condition`; then the app paints it (as its repaint timer
    would at its next beat), so the picture shows that state and nothing older."""
    app = pilot.app
    assert isinstance(app, PushPullApp)
    await until(condition, pilot=pilot, timeout=WAIT)
    app.repaint()


def fresh_history(server: RunningServer) -> int:
    """Publish the opening prices and return the newest seq: each test starts from its own ticks."""
    publish_sync(server, "RELIANCE", OPENING_PRICES)
    latest = httpx.get(server.url + "/api/price/RELIANCE").json()
    return int(latest["seq"])


def with_data(server: RunningServer, then: Callable[[Pilot[None]], Awaitable[None]] | None = None) -> Any:
    """Wait for every pane to show the latest tick, publish the live prices, wait for the push panes."""
    head = fresh_history(server)

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        panes = app.panes
        await until(lambda: all(p.client.last_tick and p.client.last_tick.seq == head for p in panes), pilot=pilot)
        async with httpx.AsyncClient() as http:
            await publish(http, server, "RELIANCE", LIVE_PRICES)
        last = head + len(LIVE_PRICES)
        await until(lambda: all(p.client.last_tick and p.client.last_tick.seq == last for p in panes[1:]), pilot=pilot)
        await until(lambda: (t := app.reference.quote.last) is not None and t.seq == last, pilot=pilot)  # the quote
        await shown_once(pilot, lambda: panes[1].client.stats.requests == 2)  # the long poll's answered requests
        if then is not None:
            await then(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_default_four_panes_with_data(snap_compare: Any, quiet_server: RunningServer, size: tuple[int, int]) -> None:
    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=size, run_before=with_data(quiet_server))


def test_every_counter_of_the_focused_pane_at_80x24(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def open_details(pilot: Pilot[None]) -> None:
        await pilot.press("tab", "enter")
        await until(lambda: isinstance(pilot.app.screen, PaneDetailScreen), pilot=pilot)

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=(80, 24), run_before=with_data(quiet_server, open_details))


def test_after_m_on_the_second_pane(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def switch_second_pane(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        await pilot.press("tab", "m")
        second = app.panes[1]
        assert second.mode == "sse"
        await shown_once(
            pilot, lambda: second.client.state is ConnectionState.LIVE and second.client.stats.updates == 1
        )

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=SIZE, run_before=with_data(quiet_server, switch_second_pane))


def test_help_screen(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def open_help(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await until(lambda: isinstance(pilot.app.screen, HelpScreen), pilot=pilot)

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=(100, 30), run_before=with_data(quiet_server, open_help))


def test_a_pane_that_cannot_reach_its_server(snap_compare: Any) -> None:
    async def wait_unreachable(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        await shown_once(pilot, lambda: app.panes[0].client.state is ConnectionState.UNREACHABLE)

    # The third refusal says unreachable; the fourth try waits 1-2 s, time enough to take the picture.
    app = make_app(
        UNREACHABLE, server_name=None, modes=["sse"], backoff=Backoff(base=0.5, cap=10.0, unreachable_after=3)
    )
    assert snap_compare(app, terminal_size=(80, 24), run_before=wait_unreachable)


def test_a_webhook_pane_beside_an_sse_pane(snap_compare: Any, quiet_server: RunningServer) -> None:
    head = fresh_history(quiet_server)

    async def deliver(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        sse, webhook = app.panes
        await until(lambda: webhook.client.state is ConnectionState.LIVE and sse.client.stats.updates == 1, pilot=pilot)
        async with httpx.AsyncClient() as http:
            await publish(http, quiet_server, "RELIANCE", LIVE_PRICES)
        last = head + len(LIVE_PRICES)
        await until(lambda: (t := app.reference.quote.last) is not None and t.seq == last, pilot=pilot)
        await shown_once(pilot, lambda: all(p.client.last_tick and p.client.last_tick.seq == last for p in app.panes))

    app = make_app(quiet_server.url, modes=["sse", "webhook"])
    assert snap_compare(app, terminal_size=(100, 30), run_before=deliver)


def test_the_watchlist_at_80x24(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def open_watchlist(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        market = app.reference.market
        await until(lambda: market.quote("TCS").last is not None, pilot=pilot)
        await pilot.press("l")
        await until(
            lambda: isinstance(app.screen, WatchlistScreen) and app.screen.shown == ["RELIANCE", "TCS"], pilot=pilot
        )

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=(80, 24), run_before=with_data(quiet_server, open_watchlist))


def test_a_fired_alert_at_100x30(snap_compare: Any, quiet_server: RunningServer) -> None:
    """RELIANCE>1314 fires at the second live price; the poll pane (every 60 s) has not asked since."""

    async def wait_for_notice(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        await until(lambda: any(n.title.startswith("RELIANCE above") for n in app._notifications), pilot=pilot)

    app = make_app(quiet_server.url, alerts=[parse_rule("RELIANCE>1314")], alert_report_wait=0.2)
    assert snap_compare(app, terminal_size=(100, 30), run_before=with_data(quiet_server, wait_for_notice))


def test_every_pane_over_the_4g_profile_at_160x45(snap_compare: Any, quiet_server: RunningServer) -> None:
    """The link in force, in the bar and on every pane (the delays are the frozen clock's)."""
    app = make_app(quiet_server.url, link=PROFILES["4g"])
    assert snap_compare(app, terminal_size=(160, 45), run_before=with_data(quiet_server))
