"""What a user sees, pinned: the default panes with data, a mode switch, help, an unreachable server.

Deterministic by construction: a quiet server (no simulator) on a fixed port, scripted ticks, a
poll interval longer than the test, a clock whose delays are fixed, no server-stats line, a
fixed terminal size. Update with `pytest --snapshot-update` only after looking at the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from tests.helpers import TOKEN, RunningServer, start_server
from tui.app import PushPullApp
from tui.modes import Backoff, ConnectionState, ServerClock

SIZE = (150, 44)
PORT = 47811
"""Fixed, because the URL is on screen. A test fails clearly if something else holds it."""
UNREACHABLE = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so connecting is refused at once."""
OPENING_PRICES = [1312.45, 1313.10, 1312.80]
LIVE_PRICES = [1313.55, 1314.20, 1313.95, 1314.60, 1315.05, 1314.75]
WAIT = 20.0


class FrozenClock(ServerClock):
    """Delays fixed at 12.5 ms and a local clock that does not move: the screen cannot drift."""

    def __init__(self) -> None:
        super().__init__(local=lambda: 1_800_000_000.0)

    def delay_ms(self, published_at: float) -> float:
        return 12.5


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    """A fresh server per test, so every picture has the same seq numbers whatever runs first."""
    server = start_server("--no-feed", "--symbols", "RELIANCE,TCS", port=PORT)
    yield server
    server.stop()


def publish_sync(server: RunningServer, prices: list[float]) -> None:
    body = {"ticks": [{"symbol": "RELIANCE", "price": p} for p in prices]}
    response = httpx.post(server.url + "/api/publish", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 201, response.text


def make_app(url: str, **options: Any) -> PushPullApp:
    return PushPullApp(
        url,
        poll_interval=60.0,
        refresh_interval=0.05,
        stats_interval=None,
        clock=FrozenClock(),
        seed=7,
        **options,
    )


async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await pilot.pause(0.02)
    await pilot.pause(0.5)  # let a repaint show it


def fresh_history(server: RunningServer) -> int:
    """Publish the opening prices and return the newest seq: each test starts from its own ticks."""
    publish_sync(server, OPENING_PRICES)
    latest = httpx.get(server.url + "/api/price/RELIANCE").json()
    return int(latest["seq"])


def with_data(server: RunningServer, then: Callable[[Pilot[None]], Awaitable[None]] | None = None) -> Any:
    """Wait for every pane to show the latest tick, publish the live prices, wait for the push panes."""
    head = fresh_history(server)

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        panes = app.panes
        await until(pilot, lambda: all(p.client.last_tick and p.client.last_tick.seq == head for p in panes))
        publish_sync(server, LIVE_PRICES)
        last = head + len(LIVE_PRICES)
        await until(pilot, lambda: all(p.client.last_tick and p.client.last_tick.seq == last for p in panes[1:]))
        await until(pilot, lambda: panes[1].client.stats.requests == 2)  # the long poll's answered requests
        if then is not None:
            await then(pilot)

    return run_before


def test_default_four_panes_with_data(snap_compare: Any, quiet_server: RunningServer) -> None:
    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=SIZE, run_before=with_data(quiet_server))


def test_after_m_on_the_second_pane(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def switch_second_pane(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        await pilot.press("tab", "m")
        second = app.panes[1]
        assert second.mode == "sse"
        await until(pilot, lambda: second.client.state is ConnectionState.LIVE and second.client.stats.updates == 1)

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=SIZE, run_before=with_data(quiet_server, switch_second_pane))


def test_help_screen(snap_compare: Any, quiet_server: RunningServer) -> None:
    async def open_help(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    app = make_app(quiet_server.url)
    assert snap_compare(app, terminal_size=SIZE, run_before=with_data(quiet_server, open_help))


def test_a_pane_that_cannot_reach_its_server(snap_compare: Any) -> None:
    async def wait_unreachable(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        await until(pilot, lambda: app.panes[0].client.state is ConnectionState.UNREACHABLE)

    # The third refusal says unreachable; the fourth try waits 1-2 s, time enough to take the picture.
    app = make_app(UNREACHABLE, modes=["sse"], backoff=Backoff(base=0.5, cap=10.0, unreachable_after=3))
    assert snap_compare(app, terminal_size=(100, 40), run_before=wait_unreachable)


def test_a_webhook_pane_beside_an_sse_pane(snap_compare: Any, quiet_server: RunningServer) -> None:
    head = fresh_history(quiet_server)

    async def deliver(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, PushPullApp)
        sse, webhook = app.panes
        await until(pilot, lambda: webhook.client.state is ConnectionState.LIVE and sse.client.stats.updates == 1)
        publish_sync(quiet_server, LIVE_PRICES)
        last = head + len(LIVE_PRICES)
        await until(pilot, lambda: all(p.client.last_tick and p.client.last_tick.seq == last for p in app.panes))

    app = make_app(quiet_server.url, modes=["sse", "webhook"])
    assert snap_compare(app, terminal_size=(110, 44), run_before=deliver)
