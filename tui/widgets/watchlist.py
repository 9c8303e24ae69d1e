"""The watchlist: every symbol the server publishes, and a way to put the panes on one.

One row per symbol: price, change and % since the session's first tick, a sparkline of its last
prices, and the time of its last tick. The figures come from the market feed (`tui.market`), the
app's own subscription to every symbol, which no pane counts. Pick a row with the arrows and
Enter, by clicking it twice (the first click highlights, as in any Textual table), or by typing
part of its name (a fuzzy match: `rel` finds RELIANCE, `hdb` HDFCBANK); the screen closes with
the symbol chosen.

Example:

    app.push_screen(WatchlistScreen(market.quote, market.recent_prices, lambda: market.symbols, "TCS"), picked)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from tui.format import NO_VALUE, fmt_change, fmt_price, sparkline
from tui.quote import QuoteState
from tui.widgets.quote import IST

__all__ = ["WatchlistScreen", "matching_symbols"]

REFRESH = 0.5
"""Seconds between redraws of the figures."""
TREND_WIDTH = 16
"""Cells of a row's sparkline: its last prices, one cell each."""
COLUMNS = ("Symbol", "Price", "Change", "%", "Trend", "Last tick")


def matching_symbols(symbols: Sequence[str], query: str) -> list[str]:
    """`symbols` that match `query` fuzzily, best first (ties in the server's order); all of them
    for an empty query."""
    query = query.strip()
    if not query:
        return list(symbols)
    matcher = Matcher(query, case_sensitive=False)
    scored = [(matcher.match(symbol), index, symbol) for index, symbol in enumerate(symbols)]
    return [symbol for score, _, symbol in sorted(scored, key=lambda item: (-item[0], item[1])) if score > 0]


def watch_row(state: QuoteState, prices: Sequence[float]) -> tuple[Text, ...]:
    """One symbol's cells: symbol, price, change, %, trend and last tick's time (IST)."""
    last = state.last
    if last is None:
        waiting = Text(NO_VALUE, "grey62")
        return (Text(state.symbol, "bold"), waiting, waiting, waiting, Text(), waiting)
    change, fraction = state.change or 0.0, state.change_fraction or 0.0
    style = "green" if round(change, 2) > 0 else "red" if round(change, 2) < 0 else "grey62"
    when = datetime.fromtimestamp(state.last_time or last.ts, IST).strftime("%H:%M:%S")
    return (
        Text(state.symbol, "bold"),
        Text(fmt_price(last.price), justify="right"),
        Text(fmt_change(change), style, justify="right"),
        Text(f"{fraction * 100:+.2f}%", style, justify="right"),
        Text(sparkline(prices[-TREND_WIDTH:]), style),
        Text(when, "grey62"),
    )


class WatchlistScreen(ModalScreen[str | None]):
    """Every symbol with its figures; dismissed with the symbol picked, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "move(1)", "Down", show=False, priority=True),
        Binding("up", "move(-1)", "Up", show=False, priority=True),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    WatchlistScreen { align: center middle; }
    WatchlistScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    WatchlistScreen #watch-help { color: $text-muted; }
    WatchlistScreen #watch-trouble { color: $warning; height: auto; }
    WatchlistScreen Input, WatchlistScreen Input:focus {
        border: none; height: 1; padding: 0 1; margin: 0 0 1 0; background: $boost;
    }
    WatchlistScreen DataTable { height: auto; max-height: 1fr; }
    """

    def __init__(
        self,
        quote: Callable[[str], QuoteState],
        recent_prices: Callable[[str], list[float]],
        symbols: Callable[[], list[str]],
        current: str,
        *,
        trouble: Callable[[], str | None] = lambda: None,
        refresh: float = REFRESH,
    ) -> None:
        super().__init__()
        self.quote = quote
        self.recent_prices = recent_prices
        self.symbols = symbols
        """Every symbol the server publishes (asked again at each redraw: known after the first answer)."""
        self.current = current
        self.trouble = trouble
        """Why the figures may be stale (the feed is not live), or None."""
        self.refresh_every = refresh
        self.shown: list[str] = []
        """The symbols in the table, in its order."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "[b]Watchlist[/b]  [dim]type to filter · ↑↓ Enter or two clicks pick · Esc closes[/dim]",
                id="watch-help",
            )
            yield Static("", id="watch-trouble")
            yield Input(placeholder="symbol (fuzzy: rel, hdb, …)", id="watch-filter")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="watch-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.redraw()
        if self.current in self.shown:
            table.move_cursor(row=self.shown.index(self.current))
        self.query_one(Input).focus()
        self.set_interval(self.refresh_every, self.redraw)

    def redraw(self) -> None:
        """The rows for the filter as typed; the same symbols in the same order are updated in place."""
        trouble = self.trouble()
        said = self.query_one("#watch-trouble", Static)
        said.update(f"{trouble}: prices as of each last tick" if trouble else "")
        said.display = bool(trouble)
        table = self.query_one(DataTable)
        wanted = matching_symbols(self.symbols() or [self.current], self.query_one(Input).value)
        rows = {symbol: watch_row(self.quote(symbol), self.recent_prices(symbol)) for symbol in wanted}
        if wanted == self.shown:
            for symbol, cells in rows.items():
                for name, cell in zip(COLUMNS, cells, strict=True):
                    table.update_cell(symbol, name, cell, update_width=True)  # (a sparkline grows)
            return
        highlighted = self.highlighted()
        table.clear()
        for symbol, cells in rows.items():
            table.add_row(*cells, key=symbol)
        self.shown = wanted
        if highlighted in wanted:
            table.move_cursor(row=wanted.index(highlighted))

    def highlighted(self) -> str | None:
        """The symbol under the cursor, if any row is shown."""
        table = self.query_one(DataTable)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def action_move(self, step: int) -> None:
        table = self.query_one(DataTable)
        if self.shown:
            table.move_cursor(row=max(0, min(len(self.shown) - 1, table.cursor_row + step)))

    @on(Input.Changed)
    def filter_changed(self) -> None:
        self.redraw()
        if self.shown:
            self.query_one(DataTable).move_cursor(row=0)  # the best match

    @on(Input.Submitted)
    def pick_highlighted(self) -> None:
        symbol = self.highlighted()
        if symbol is None:
            self.notify("no symbol matches", severity="warning", timeout=2)
            return
        self.dismiss(symbol)

    @on(DataTable.RowSelected)
    def pick_row(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.dismiss(str(event.row_key.value))
