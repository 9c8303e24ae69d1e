"""The alerts window: the price alerts held, one to add for the watched symbol, and a way to remove one.

It opens with a rule ready for the watched symbol a step above its last price (`RELIANCE>1318.80`):
Enter adds it, the arrows move its line a step at a time, and any rule can be typed instead. The
list below says of each rule whether it is armed or when it last fired, and where it re-arms
(the hysteresis of `tui.alerts`). Delete removes the highlighted one.

Example:

    app.push_screen(AlertsScreen(book, "RELIANCE>1318.80", symbols=lambda: ["RELIANCE", "TCS"]))
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from server.schema import NSE_TICK_SIZE
from tui.alerts import AlertBook, AlertRule, Crossing, parse_rule
from tui.format import fmt_price
from tui.widgets.quote import IST

__all__ = ["STEP_FRACTION", "AlertsScreen", "stepped", "suggested_rule"]

STEP_FRACTION = 0.005
"""A step of a price line: 0.5 % of the price (₹6.55 at ₹1,312), on the 0.05 tick grid."""
STEP_POINTS = 0.5
"""A step of a `%` rule, in percentage points."""


def on_grid(price: float) -> float:
    """`price` on the NSE tick grid, at least one tick."""
    return max(NSE_TICK_SIZE, round(round(price / NSE_TICK_SIZE) * NSE_TICK_SIZE, 2))


def suggested_rule(symbol: str, price: float | None) -> str:
    """A rule a step above `price` (a 1 % move when the price is not known yet)."""
    if price is None:
        return f"{symbol}%1"
    return str(AlertRule(symbol, ">", on_grid(price * (1 + STEP_FRACTION))))


def stepped(rule: AlertRule, steps: int) -> AlertRule:
    """`rule` with its line moved by `steps` steps (never to zero or below)."""
    if rule.kind == "%":
        level = rule.level + steps * STEP_POINTS
        return AlertRule(rule.symbol, "%", min(100.0, level)) if level > 0 else rule  # (never up when going down)
    step = on_grid(rule.level * STEP_FRACTION)
    return AlertRule(rule.symbol, rule.kind, on_grid(rule.level + steps * step))


class AlertsScreen(ModalScreen[None]):
    """Add, list and remove price alerts; Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("up", "step(1)", "Line up", show=False),
        Binding("down", "step(-1)", "Line down", show=False),
        Binding("delete,backspace", "remove", "Remove", show=False),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    AlertsScreen { align: center middle; }
    AlertsScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    AlertsScreen .hint { color: $text-muted; }
    AlertsScreen Input, AlertsScreen Input:focus {
        border: none; height: 1; padding: 0 1; margin: 1 0 0 0; background: $boost;
    }
    AlertsScreen #alert-problem { color: $error; height: auto; }
    AlertsScreen DataTable { height: auto; max-height: 1fr; }
    """

    def __init__(
        self,
        book: AlertBook,
        suggestion: str,
        *,
        symbols: Callable[[], list[str]],
        fired: Callable[[AlertRule], Crossing | None] = lambda rule: None,
        first_price: Callable[[str], float | None] = lambda symbol: None,
    ) -> None:
        super().__init__()
        self.book = book
        self.suggestion = suggestion
        self.symbols = symbols
        """What the server publishes: a rule for anything else is refused."""
        self.fired = fired
        """The last crossing of a rule, if it fired this session."""
        self.first_price = first_price
        """A symbol's first price this session (a `%` rule's base)."""
        self.shown: list[AlertRule] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Price alerts[/b]", markup=True)
            yield Static(
                "Enter adds · ↑↓ step the line · Tab: the list, Delete removes · Esc closes",
                classes="hint",
            )
            yield Input(self.suggestion, placeholder="RELIANCE>1320, TCS<3500 or INFY%2", id="alert-rule")
            yield Static("", id="alert-problem")
            yield DataTable(cursor_type="row", id="alert-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in ("Rule", "State"):
            table.add_column(name, key=name)
        self.redraw()
        self.query_one(Input).focus()
        self.set_interval(1.0, self.redraw)

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        self.shown = self.book.rules
        for rule in self.shown:
            table.add_row(str(rule), self.state_text(rule), key=str(rule))
        if not self.shown:
            table.add_row(Text("none yet", "grey62"), "")
        elif cursor < len(self.shown):
            table.move_cursor(row=cursor)

    def state_text(self, rule: AlertRule) -> Text:
        first_price = self.first_price(rule.symbol)
        base = f" (from {fmt_price(first_price)})" if rule.kind == "%" and first_price is not None else ""
        if self.book.is_armed(rule):
            return Text(f"armed{base}", "green")
        crossing = self.fired(rule)
        when = "" if crossing is None else " " + datetime.fromtimestamp(crossing.at, IST).strftime("%H:%M:%S")
        if rule.kind == "%":
            rearm = f"under {rule.rearm_line:g}%"
        else:
            rearm = f"{'below' if rule.kind == '>' else 'above'} {fmt_price(rule.rearm_line)}"
        return Text(f"fired{when}, re-arms {rearm}{base}", "yellow")

    def say(self, problem: str) -> None:
        self.query_one("#alert-problem", Static).update(problem)

    @on(Input.Submitted)
    def add_typed(self, event: Input.Submitted) -> None:
        try:
            rule = parse_rule(event.value)
        except argparse.ArgumentTypeError as exc:
            self.say(str(exc))
            return
        known = self.symbols()
        if known and rule.symbol not in known:
            self.say(f"the server does not publish {rule.symbol}; it publishes {', '.join(known)}")
            return
        if not self.book.add(rule):
            self.say(f"{rule} is set already")
            return
        self.say("")
        self.notify(f"alert set: {rule.describe(self.first_price(rule.symbol))}", timeout=3)
        self.redraw()

    def action_step(self, steps: int) -> None:
        """Move the line of the rule being typed (the list, when focused, takes the arrows itself)."""
        field = self.query_one(Input)
        try:
            rule = parse_rule(field.value)
        except argparse.ArgumentTypeError:
            return  # nothing to step: the user is typing
        field.value = str(stepped(rule, steps))
        field.cursor_position = len(field.value)

    def action_remove(self) -> None:
        table = self.query_one(DataTable)
        if self.focused is not table or not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return
        rule = self.shown[table.cursor_row]
        self.book.remove(rule)
        self.say("")
        self.notify(f"alert removed: {rule}", timeout=3)
        self.redraw()
