"""Every counter of the focused pane, when panes are shown as one-line rows (small terminals)."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from tui.widgets.pane import Pane, counter_rows, counters_table

__all__ = ["PaneDetail"]

LABEL_AND_VALUE = 22
"""Cells one label / value pair takes, with its gap."""


class PaneDetail(Static):
    """The focused pane's counters, in as many columns as fit."""

    DEFAULT_CSS: ClassVar[str] = """
    PaneDetail { height: auto; padding: 0 1; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: object = None

    def show(self, pane: Pane | None) -> None:
        if pane is None:
            key: object = None
            content: Group | Text = Text("no pane focused", "grey50")
        else:
            rows = counter_rows(pane.client)
            columns = max(1, min(4, (self.size.width - 2) // LABEL_AND_VALUE))
            title = Text.assemble(
                (f"{pane.number} {pane.mode}", "bold"), " · ", pane.client.title, (" · every counter", "grey50")
            )
            key = (pane.number, pane.mode, rows, columns)
            content = Group(title, counters_table(rows, columns))
        if key != self._shown:
            self._shown = key
            self.update(content)
