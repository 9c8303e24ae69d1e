"""The comparison and the quote header, each in a small real app, at 80 and 160 columns."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widget import Widget

from server.schema import Tick
from tui.format import NO_VALUE, fmt_price
from tui.modes import ModeClient, make_client
from tui.quote import SessionQuote
from tui.widgets import Comparison, ComparisonRow, QuoteHeader

SIZES = [(80, 24), (160, 45)]
T0 = 1764290000.0
"""2025-11-28 00:33:20 UTC, 06:03:20 IST."""


class WidgetApp(App[None]):
    """Just the two widgets, as the app will stack them."""

    def compose(self) -> ComposeResult:
        yield QuoteHeader()
        yield Comparison()


def client(mode: str, p50_ms: float, requests: int, wire_bytes: int, *, updates: int, missed: int) -> ModeClient:
    """A real client, never run, holding the figures a pane would have measured."""
    mode_client = make_client(mode, "http://127.0.0.1:9", "RELIANCE", poll_interval=1.0)
    stats = mode_client.stats
    stats.updates, stats.missed, stats.requests, stats.wire_bytes_received = updates, missed, requests, wire_bytes
    for _ in range(3):
        stats.record_delay(p50_ms)
    return mode_client


def four_panes() -> list[ComparisonRow]:
    clients = [
        client("poll", 254, 1130, 420_000, updates=1000, missed=1500),
        client("longpoll", 9, 1000, 330_000, updates=1000, missed=0),
        client("sse", 3, 10, 88_000, updates=1000, missed=0),
        client("ws", 3.6, 10, 102_000, updates=1000, missed=0),
    ]
    return [ComparisonRow(number, mode_client, focused=number == 2) for number, mode_client in enumerate(clients, 1)]


def screen_lines(widget: Widget) -> list[str]:
    """The widget's lines as drawn on screen."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return [strip.text.rstrip() for strip in strips]


def shown(widget: Comparison | QuoteHeader) -> Text:
    content = widget.content
    assert isinstance(content, Text)
    return content


def bar_colours(comparison: Comparison, line_start: str) -> list[str]:
    """The colour of each metric's bar on the line starting so (bars only, not their dim track)."""
    for line in shown(comparison).split("\n"):
        if line.plain.lstrip("▸ ").startswith(line_start):
            return [
                str(span.style)
                for span in line.spans
                if line.plain[span.start : span.end].strip("━╸") == "" and str(span.style) != "grey30"
            ]
    raise AssertionError(f"no line {line_start!r} in {shown(comparison).plain}")


def line_of(comparison: Comparison, line_start: str) -> str:
    return next(line for line in screen_lines(comparison) if line.lstrip("▸ ").startswith(line_start))


@pytest.mark.parametrize("size", SIZES)
async def test_the_comparison_ranks_each_metric_best_green_to_worst_red(size: tuple[int, int]) -> None:
    app = WidgetApp()
    async with app.run_test(size=size) as pilot:
        comparison = app.query_one(Comparison)
        comparison.show(four_panes(), tick_rate=2.0)
        await pilot.pause()

        # delay, req/upd, wire/upd, missed: the missed column's 0% bars are empty, only poll's shows
        assert bar_colours(comparison, "1 poll") == ["red", "red", "red", "red"]
        assert bar_colours(comparison, "3 sse") == ["green", "green", "green"]
        assert bar_colours(comparison, "2 longpoll") == ["yellow", "yellow", "yellow"]
        assert bar_colours(comparison, "4 ws") == ["yellow", "green", "yellow"]  # 0.01 req/upd, as sse: a tie

        assert "60.0%" in line_of(comparison, "1 poll")  # 1,500 missed of 2,500 published
        assert "254 ms" in line_of(comparison, "1 poll")
        assert line_of(comparison, "3 sse").endswith("0.0%")
        lines = screen_lines(comparison)
        assert lines[0].split()[:4] == ["#", "mode", "delay", "p50"]
        assert "wire/upd" in lines[0]
        assert lines[2].lstrip().startswith("└ theory")  # right under poll
        assert "283 ms" in lines[2] and "1.16" in lines[2] and "56.8%" in lines[2]  # λ=2/s, every 1 s
        assert lines[3].startswith("▸ 2 longpoll")
        assert all(len(line) <= size[0] and "…" not in line for line in lines)


@pytest.mark.parametrize("size", SIZES)
async def test_six_panes_fit_one_line_each(size: tuple[int, int]) -> None:
    app = WidgetApp()
    async with app.run_test(size=size) as pilot:
        comparison = app.query_one(Comparison)
        rows = [
            *four_panes(),
            ComparisonRow(5, client("webhook", 40, 0, 150_000, updates=1000, missed=2), focused=False),
            ComparisonRow(6, client("poll", 120, 3000, 300_000, updates=1000, missed=0), focused=False),
        ]
        comparison.show(rows, tick_rate=2.0)
        await pilot.pause()

        lines = screen_lines(comparison)
        assert len(lines) == 1 + 6 + 2  # header, six panes, theory under each poll pane
        assert comparison.size.height == len(lines)
        assert all(len(line) <= size[0] and "…" not in line for line in lines)
        assert all(line.endswith("%") for line in lines[1:])  # every line ends with its missed %


async def test_theory_is_left_out_without_a_tick_rate_and_nothing_measured_is_a_dash() -> None:
    app = WidgetApp()
    async with app.run_test(size=(80, 24)) as pilot:
        comparison = app.query_one(Comparison)
        idle = make_client("sse", "http://127.0.0.1:9", "RELIANCE")
        comparison.show([four_panes()[0], ComparisonRow(2, idle, focused=False)], tick_rate=None)
        await pilot.pause()

        lines = screen_lines(comparison)
        assert not any("theory" in line for line in lines)
        assert line_of(comparison, "2 sse").split()[2:] == [NO_VALUE] * 4  # no bar, just a dash
        assert bar_colours(comparison, "2 sse") == []

        comparison.show([four_panes()[0]], tick_rate=0.0)
        await pilot.pause()
        assert not any("theory" in line for line in screen_lines(comparison))


async def test_a_repaint_that_changes_nothing_draws_nothing() -> None:
    app = WidgetApp()
    async with app.run_test(size=(80, 24)) as pilot:
        comparison = app.query_one(Comparison)
        rows = four_panes()
        comparison.show(rows, tick_rate=2.0)
        await pilot.pause()
        drawn = comparison.content
        comparison.show(rows, tick_rate=2.0)
        assert comparison.content is drawn
        for _ in range(4):
            rows[2].client.stats.record_delay(900.0)  # sse's p50 moves: drawn again
        comparison.show(rows, tick_rate=2.0)
        assert comparison.content is not drawn


def ticks(*prices: float, symbol: str = "RELIANCE") -> list[Tick]:
    return [Tick(symbol=symbol, seq=seq, price=price, ts=T0 + seq, epoch="k3v9") for seq, price in enumerate(prices, 1)]


def quote_of(*prices: float) -> SessionQuote:
    quote = SessionQuote("RELIANCE")
    for tick in ticks(*prices):
        quote.take(tick)
    return quote


def test_a_session_keeps_its_first_price_high_low_and_last_tick() -> None:
    quote = quote_of(1311.25, 1318.40, 1306.10, 1312.45)
    assert (quote.symbol, quote.first_price, quote.high, quote.low) == ("RELIANCE", 1311.25, 1318.40, 1306.10)
    assert quote.last is not None and quote.last.price == 1312.45
    quote.take(ticks(1500.0)[0])  # seq 1 again: already seen
    quote.take(ticks(1, 2, 3, 4, 5, 6, symbol="TCS")[-1])  # another symbol's
    assert quote.last.price == 1312.45 and quote.high == 1318.40

    quote.reset("TCS")
    fresh = quote.state
    assert (fresh.symbol, fresh.first_price, fresh.high, fresh.low, fresh.last) == ("TCS", None, None, None, None)


def test_prices_are_rupees_with_commas() -> None:
    assert fmt_price(1312.45) == "₹1,312.45"
    assert fmt_price(1234567.5) == "₹1,234,567.50"


@pytest.mark.parametrize("size", SIZES)
async def test_the_quote_header_shows_price_change_and_time(size: tuple[int, int]) -> None:
    app = WidgetApp()
    async with app.run_test(size=size) as pilot:
        header = app.query_one(QuoteHeader)
        header.show(quote_of(1311.25, 1318.40, 1306.10, 1312.45), simulated=True, now=T0 + 4.5)
        await pilot.pause()

        [line] = screen_lines(header)
        assert line.startswith(" RELIANCE   ₹1,312.45   ▲ +1.20 (+0.09%)")
        assert line.endswith("06:03:24 IST   SIMULATED")
        assert len(line) <= size[0]
        assert ("high ₹1,318.40  low ₹1,306.10" in line) == (size[0] > 80)  # the first to go when narrow
        up = next(span for span in shown(header).spans if "▲" in shown(header).plain[span.start : span.end])
        assert str(up.style) == "green"


async def test_a_falling_price_is_red_and_a_real_feed_is_not_labelled() -> None:
    app = WidgetApp()
    async with app.run_test(size=(80, 24)) as pilot:
        header = app.query_one(QuoteHeader)
        header.show(quote_of(1312.45, 1300.00), simulated=False)
        await pilot.pause()

        [line] = screen_lines(header)
        assert "▼ -12.45 (-0.95%)" in line
        assert "SIMULATED" not in line
        down = next(span for span in shown(header).spans if "▼" in shown(header).plain[span.start : span.end])
        assert str(down.style) == "red"


async def test_a_quiet_quote_says_how_old_it_is_and_narrow_drops_the_time_before_the_label() -> None:
    app = WidgetApp()
    async with app.run_test(size=(60, 24)) as pilot:
        header = app.query_one(QuoteHeader)
        header.show(quote_of(1311.25, 1312.45), simulated=True, now=T0 + 2 + 12.3)
        await pilot.pause()

        [line] = screen_lines(header)
        assert "IST" not in line and line.endswith("SIMULATED") and "₹1,312.45" in line
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        [line] = screen_lines(header)
        assert "06:03:22 IST (12 s ago)" in line


async def test_before_the_first_tick_the_header_names_the_symbol_and_waits() -> None:
    app = WidgetApp()
    async with app.run_test(size=(80, 24)) as pilot:
        header = app.query_one(QuoteHeader)
        header.show(SessionQuote("INFY"), simulated=None)
        await pilot.pause()

        [line] = screen_lines(header)
        assert line == " INFY   waiting for the first tick…"
