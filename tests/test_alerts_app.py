"""Price alerts as a user gets them: `--alert` rules watched over the market feed, a notice that
names the mode that saw the crossing first, once per crossing, and the alerts window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from textual.notifications import Notification
from textual.pilot import Pilot
from textual.widgets import Input

from tests.helpers import RunningServer, publish, start_server, until
from tui.alerts import AlertRule, parse_rule
from tui.app import PushPullApp
from tui.config import load
from tui.widgets import AlertsScreen

SIZE = (120, 40)


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    with start_server("--no-feed", "--symbols", "RELIANCE,TCS") as server:
        yield server


@asynccontextmanager
async def app_with(
    server: RunningServer, modes: Sequence[str], alerts: Sequence[AlertRule] = (), **options: object
) -> AsyncIterator[tuple[PushPullApp, Pilot[None]]]:
    app = PushPullApp(
        server.url,
        modes=modes,
        poll_interval=0.2,
        refresh_interval=0.05,
        stats_interval=None,
        alerts=alerts,
        startup_grace=0,
        **options,  # type: ignore[arg-type]
    )
    async with app.run_test(size=SIZE) as pilot:
        market = app.reference.market
        await until(lambda: all(market.quote(s).last for s in ("RELIANCE", "TCS")), pilot=pilot)
        await until(lambda: all(p.client.last_tick for p in app.panes), pilot=pilot)
        yield app, pilot


def alert_notices(app: PushPullApp) -> list[Notification]:
    return [n for n in app._notifications if "above" in n.title or "below" in n.title or "moved" in n.title]


async def test_a_crossing_is_told_once_naming_the_first_mode(quiet_server: RunningServer) -> None:
    rule = parse_rule("RELIANCE>2000")
    async with app_with(quiet_server, ["poll", "sse", "ws"], [rule]) as (app, pilot), httpx.AsyncClient() as http:
        await publish(http, quiet_server, "RELIANCE", [1999.0, 2000.0])  # at the line: not above it
        await until(
            lambda: app.reference.quote.last is not None and app.reference.quote.last.price == 2000.0, pilot=pilot
        )
        await pilot.pause(0.3)
        assert alert_notices(app) == [] and app.alert_book.is_armed(rule)

        crossing = await publish(http, quiet_server, "RELIANCE", [2001.0, 2002.5, 1999.5])  # hovers, never re-arms
        await until(lambda: len(alert_notices(app)) == 1, pilot=pilot)
        notice = alert_notices(app)[0]
        assert notice.title == "RELIANCE above ₹2,000.00: ₹2,001.00"
        assert notice.message.startswith("first seen by ")
        for mode in ("poll", "sse", "ws"):
            assert mode in notice.message  # every pane is named, with its lag or "not yet"
        assert app.fired[rule].tick.seq == crossing[0]["seq"]
        await publish(http, quiet_server, "RELIANCE", [2003.0])
        await pilot.pause(0.5)
        assert len(alert_notices(app)) == 1  # still above, and it never fell past the band: no repeat

        await publish(http, quiet_server, "RELIANCE", [1990.0, 2004.0])  # below 1998.00 re-arms it
        await until(lambda: len(alert_notices(app)) == 2, pilot=pilot)
        assert alert_notices(app)[1].title == "RELIANCE above ₹2,000.00: ₹2,004.00"


async def test_the_first_mode_named_is_the_one_whose_receipt_came_first(quiet_server: RunningServer) -> None:
    """With a poll every 5 s and a push pane beside it, the push pane sees the crossing first."""
    rule = parse_rule("RELIANCE<100")
    async with app_with(quiet_server, ["sse", "poll"], [rule], alert_report_wait=0.5) as (app, pilot):
        app.panes[1].client.poll_interval = 30.0  # (its next ask is long after the crossing)
        await pilot.pause(0.5)
        async with httpx.AsyncClient() as http:
            await publish(http, quiet_server, "RELIANCE", [99.0])
        await until(lambda: len(alert_notices(app)) == 1, pilot=pilot)
        assert alert_notices(app)[0].message == "first seen by sse; poll: not yet"


async def test_an_alert_on_a_symbol_no_pane_watches(quiet_server: RunningServer) -> None:
    async with app_with(quiet_server, ["sse"], [parse_rule("TCS%1")]) as (app, pilot):
        first = app.reference.market.quote("TCS").first_price
        assert first is not None
        async with httpx.AsyncClient() as http:
            await publish(http, quiet_server, "TCS", [round(first * 0.985, 1)])
        await until(lambda: len(alert_notices(app)) == 1, pilot=pilot)
        notice = alert_notices(app)[0]
        assert notice.title.startswith("TCS moved 1% from ") and "(-1.5" in notice.title
        assert notice.message == "no pane watches TCS: the watchlist's feed saw it (l to watch it)"


async def test_the_alerts_window_adds_steps_and_removes(quiet_server: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    async with app_with(quiet_server, ["sse"], config_path=config) as (app, pilot):
        price = app.reference.quote.last.price  # type: ignore[union-attr]
        await pilot.press("n")
        await until(lambda: isinstance(app.screen, AlertsScreen), pilot=pilot)
        field = app.screen.query_one(Input)
        suggested = parse_rule(field.value)
        assert suggested.symbol == "RELIANCE" and suggested.kind == ">" and suggested.level > price
        await pilot.press("up")
        raised = parse_rule(field.value)
        assert raised.level > suggested.level
        await pilot.press("enter")
        assert app.alert_book.rules == [raised]

        field.value = "NOPE>5"
        await pilot.press("enter")
        problem = str(app.screen.query_one("#alert-problem").render())
        assert "does not publish NOPE" in problem and len(app.alert_book.rules) == 1
        field.value = "TCS=5"
        await pilot.press("enter")
        assert "invalid alert 'TCS=5'" in str(app.screen.query_one("#alert-problem").render())

        field.value = "tcs < 3000"
        await pilot.press("enter")
        assert [str(rule) for rule in app.alert_book.rules] == [str(raised), "TCS<3000"]

        await pilot.press("tab", "delete")  # the list: removes the highlighted (first) rule
        assert [str(rule) for rule in app.alert_book.rules] == ["TCS<3000"]
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, AlertsScreen), pilot=pilot)
        await pilot.press("w")
    assert [str(rule) for rule in load(config).values["alerts"]] == ["TCS<3000"]  # found again after a restart


async def test_a_rule_already_true_at_start_says_so_instead_of_a_race(quiet_server: RunningServer) -> None:
    async with app_with(quiet_server, ["poll", "ws"], [parse_rule("RELIANCE>1")]) as (app, pilot):
        await until(lambda: len(alert_notices(app)) == 1, pilot=pilot)
        notice = alert_notices(app)[0]
        assert notice.title.startswith("RELIANCE above ₹1.00: ")
        assert notice.message == "already past the line when the app (or the server's history) started: no race to show"
