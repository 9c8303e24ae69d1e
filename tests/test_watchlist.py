"""The watchlist as a user drives it: every symbol's figures from the app's own feed, and picking
one by typing, by the arrows or by a click puts every pane on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from server.schema import Tick
from tests.helpers import RunningServer, publish, start_server, until
from tui.app import PushPullApp
from tui.format import sparkline
from tui.market import MarketFeed
from tui.runner import ClientThread
from tui.widgets import WatchlistScreen
from tui.widgets.watchlist import matching_symbols

SYMBOLS = ("RELIANCE", "TCS", "INFY", "HDFCBANK")
SIZE = (100, 30)


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    with start_server("--no-feed", "--symbols", ",".join(SYMBOLS)) as server:
        yield server


@asynccontextmanager
async def watching(server: RunningServer, modes: list[str]) -> AsyncIterator[tuple[PushPullApp, Pilot[None]]]:
    app = PushPullApp(server.url, modes=modes, poll_interval=0.1, refresh_interval=0.05, stats_interval=None)
    async with app.run_test(size=SIZE) as pilot:
        market = app.reference.market
        await until(
            lambda: len(market.symbols) == len(SYMBOLS) and market.quote("HDFCBANK").last is not None, pilot=pilot
        )
        yield app, pilot


async def open_watchlist(app: PushPullApp, pilot: Pilot[None]) -> WatchlistScreen:
    await pilot.press("l")
    await until(lambda: isinstance(app.screen, WatchlistScreen), pilot=pilot)
    screen = app.screen
    assert isinstance(screen, WatchlistScreen)
    return screen


def row_text(screen: WatchlistScreen, symbol: str) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(cell) for cell in table.get_row(symbol)]


def test_fuzzy_matching_orders_best_first() -> None:
    symbols = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "ICICIBANK"]
    assert matching_symbols(symbols, "") == symbols
    assert matching_symbols(symbols, "tcs")[0] == "TCS"
    assert matching_symbols(symbols, "hdb") == ["HDFCBANK"]
    assert matching_symbols(symbols, "bank")[:2] == ["HDFCBANK", "ICICIBANK"]
    assert matching_symbols(symbols, "zzz") == []


async def test_every_symbol_with_its_session_since_the_app_started(quiet_server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        opening = {t["symbol"]: t["price"] for t in (await http.get(quiet_server.url + "/api/symbols")).json()}
    async with watching(quiet_server, ["sse"]) as (app, pilot):
        async with httpx.AsyncClient() as http:
            ticks = await publish(http, quiet_server, "TCS", [opening["TCS"] + 10, opening["TCS"] + 25.5])
        market = app.reference.market
        await until(lambda: (t := market.quote("TCS").last) is not None and t.seq == ticks[-1]["seq"], pilot=pilot)
        screen = await open_watchlist(app, pilot)
        await until(lambda: screen.shown == list(SYMBOLS), pilot=pilot)
        await pilot.pause(0.3)  # a redraw after the ticks
        symbol, price, change, percent, trend, _ = row_text(screen, "TCS")
        assert symbol == "TCS"
        assert price == f"\u20b9{opening['TCS'] + 25.5:,.2f}"
        assert change == "+25.50"
        assert percent == f"{25.5 / opening['TCS'] * 100:+.2f}%"
        assert trend == sparkline([opening["TCS"], opening["TCS"] + 10, opening["TCS"] + 25.5])
        untouched = row_text(screen, "INFY")
        assert untouched[2] == "+0.00" and untouched[1] == f"\u20b9{opening['INFY']:,.2f}"


async def test_typing_part_of_a_name_and_enter_switches_every_pane(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["poll", "sse", "ws"]) as (app, pilot):
        await open_watchlist(app, pilot)
        await pilot.press("h", "d", "b", "enter")
        await until(lambda: not isinstance(app.screen, WatchlistScreen), pilot=pilot)
        assert app.symbol == "HDFCBANK"
        assert [pane.client.symbol for pane in app.panes] == ["HDFCBANK"] * 3
        await until(
            lambda: all(p.client.last_tick and p.client.last_tick.symbol == "HDFCBANK" for p in app.panes), pilot=pilot
        )
        assert app.reference.quote.symbol == "HDFCBANK"


async def test_arrows_and_enter_pick_the_highlighted_row(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["sse"]) as (app, pilot):
        screen = await open_watchlist(app, pilot)
        assert screen.highlighted() == "RELIANCE"  # the cursor starts on the symbol watched
        await pilot.press("down", "down", "up", "down", "down", "enter")
        await until(lambda: app.symbol == "HDFCBANK", pilot=pilot)
        assert app.panes[0].client.symbol == "HDFCBANK"


async def test_a_click_picks_a_row(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["sse"]) as (app, pilot):
        screen = await open_watchlist(app, pilot)
        table = screen.query_one(DataTable)
        row = (3, 1 + SYMBOLS.index("INFY"))  # (under the header row)
        await pilot.click(table, offset=row)  # the first click highlights, as in any Textual table
        assert screen.highlighted() == "INFY" and app.symbol == "RELIANCE"
        await pilot.click(table, offset=row)  # the second picks
        await until(lambda: app.symbol == "INFY", pilot=pilot)
        assert not isinstance(app.screen, WatchlistScreen)


async def test_escape_and_a_name_that_matches_nothing_change_nothing(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["sse"]) as (app, pilot):
        client = app.panes[0].client
        screen = await open_watchlist(app, pilot)
        await pilot.press("z", "z", "z", "enter")
        assert app.screen is screen and screen.shown == []  # still open: nothing to pick
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, WatchlistScreen), pilot=pilot)
        assert app.symbol == "RELIANCE" and app.panes[0].client is client  # not even restarted


async def test_the_feed_is_one_websocket_that_no_pane_counts(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["poll"]) as (app, pilot):
        await until(lambda: app.panes[0].client.stats.updates >= 1, pilot=pilot)
        async with httpx.AsyncClient() as http:
            stats = (await http.get(quiet_server.url + "/api/stats")).json()
        assert stats["transports"]["ws"]["open_connections"] == 1  # the market feed: every symbol, one socket
        assert app.panes[0].client.stats.open_connections == 0  # the poll pane holds nothing


async def test_the_market_feed_drops_a_resumed_repeat(quiet_server: RunningServer) -> None:
    """Ticks taken twice (a resume overlapping what arrived) count once in the session."""
    market = MarketFeed(quiet_server.url)
    runner = ClientThread(market)
    runner.start()
    try:
        await until(lambda: market.quote("TCS").last is not None)
        async with httpx.AsyncClient() as http:
            ticks = await publish(http, quiet_server, "TCS", [3000.0, 3001.0])
        await until(lambda: (t := market.quote("TCS").last) is not None and t.seq == ticks[-1]["seq"])
        before = list(market.published("TCS"))
        market.take(Tick.model_validate(ticks[0]), 0.0)  # a repeat of an older tick
        assert list(market.published("TCS")) == before
        assert market.recent_prices("TCS")[-2:] == [3000.0, 3001.0]
    finally:
        runner.stop()
        runner.join(5.0)


async def test_the_watchlist_says_when_its_feed_is_down(quiet_server: RunningServer) -> None:
    async with watching(quiet_server, ["sse"]) as (app, pilot):
        screen = await open_watchlist(app, pilot)
        trouble = screen.query_one("#watch-trouble")
        assert str(trouble.render()) == ""  # live: nothing to say
        quiet_server.stop()
        await until(lambda: "the feed is reconnecting" in str(trouble.render()), pilot=pilot)
        assert "prices as of each last tick" in str(trouble.render())
