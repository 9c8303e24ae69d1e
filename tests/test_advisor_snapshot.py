"""The interval advisor at 100x30, pinned: the four plots, the advice and the table.

The recipe of `tests/test_snapshots.py` (a fresh quiet server, scripted ticks, a frozen client
clock and wall clock, a poll interval longer than the test), with one addition: the tick rate.
A quiet server has no simulator to report one, and the rate the app measures depends on when the
ticks came; so the screen is given the app's own data builder (`tui.advisor.advisor_data`, what
the `i` key uses) over the real panes with the rate fixed at `TICK_RATE`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.helpers import RunningServer, start_server, until
from tests.test_snapshots import make_app, with_data
from tui.advisor import AdvisorData, advisor_data
from tui.app import PushPullApp
from tui.widgets import AdvisorScreen

TICK_RATE = 2.0
"""Ticks/s theory assumes in the picture (the simulator's default)."""


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    """A fresh server per test, so the picture has the same seq numbers whatever runs first."""
    with start_server("--no-feed", "--symbols", "RELIANCE,TCS") as server:
        yield server


def test_the_advisor_at_100x30(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def open_advisor(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)

        def data() -> AdvisorData:
            clients = [pane.client for pane in app.panes]
            return advisor_data(clients, tick_rate=TICK_RATE, poll_interval=app.poll_interval)

        await app.push_screen(AdvisorScreen(data))
        await until(lambda: isinstance(app.screen, AdvisorScreen), pilot=pilot)
        await pilot.pause()

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=(100, 30), run_before=with_data(quiet_server, open_advisor))
