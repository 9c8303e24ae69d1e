"""Every counter of the focused pane, when panes are shown as one-line rows (small terminals)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from tui.widgets.pane import Pane, counter_rows, counters_table

__all__ = ["PaneDetail"]

LABEL_AND_VALUE = 22
"""Cells one label / value pair takes, with its gap."""


class PaneDetail(Static):
    """The focused pane's counters, in as many columns as its height asks for and its width allows."""

    DEFAULT_CSS: ClassVar[str] = """
    PaneDetail { height: 1fr; padding: 0 1; border-top: solid $panel-lighten-2; border-title-align: left; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: object = None

    def show(self, pane: Pane | None) -> None:
        if pane is None:
            self.border_title = "no pane"
            return
        rows = counter_rows(pane.client)
        fit_across = max(1, (self.content_size.width or 80) // LABEL_AND_VALUE)
        per_column = max(1, self.content_size.height or len(rows))
        columns = min(fit_across, -(-len(rows) // per_column))
        key = (pane.number, pane.mode, rows, columns)
        if key == self._shown:
            return
        self._shown = key
        self.border_title = Text.assemble(
            (f"{pane.number} {pane.mode}", "bold"), " · ", pane.client.title, (" · every counter", "grey50")
        ).markup
        self.update(counters_table(rows, columns))
