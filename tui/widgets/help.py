"""The help screen: every key, and what each mode teaches."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen"]

LESSONS = (
    (
        "poll",
        "asks on a fixed beat: late by part of the interval, a 304 when nothing changed, ticks between asks unseen",
    ),
    ("longpoll", "the server holds the request until a tick exists: low delay, but a new request per update"),
    ("sse", "one open HTTP stream: near real-time, resumable, but a held connection per client"),
    ("ws", "one open socket both ways: near real-time, subscribe and resume over it, a connection per client"),
    ("webhook", "the server calls us: nothing held open, but we must run a verifying receiver"),
)


class HelpScreen(ModalScreen[None]):
    """Keys and lessons; any of Escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close help"),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 1 2;
    }
    """

    def __init__(self, keys: list[tuple[str, str]], poll_expectation: str | None = None) -> None:
        super().__init__()
        self.keys = keys
        self.poll_expectation = poll_expectation
        """What theory expects of polling at the app's current settings (`tui.theory`)."""

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold")
        keys.add_column()
        for key, description in self.keys:
            keys.add_row(key, description)
        lessons = Table.grid(padding=(0, 2))
        lessons.add_column(style="bold")
        lessons.add_column()
        for mode, lesson in LESSONS:
            lessons.add_row(mode, lesson)
            if mode == "poll" and self.poll_expectation:
                lessons.add_row("", f"[dim]{self.poll_expectation}[/dim]")
        with VerticalScroll():
            yield Static(
                "[b]pushpull[/b]: the same ticks by different modes, and what each costs.\n"
                "[dim]Escape, q or ? closes this; arrows and the wheel scroll.[/dim]\n"
            )
            yield Static(keys)
            yield Static("\n[b]What each mode teaches[/b]")
            yield Static(lessons)
