"""Every counter of the focused pane, when panes are shown as one-line rows (small terminals)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.pane import SERVER_STYLE, Pane, counter_rows, counters_table

__all__ = ["PaneDetail", "PaneDetailScreen"]

LABEL_AND_VALUE = 21
"""Cells one label / value pair takes, with its gap."""


class PaneDetail(Static):
    """The focused pane's counters, in as many columns as its height asks for and its width allows."""

    DEFAULT_CSS: ClassVar[str] = """
    PaneDetail { height: 1fr; padding: 0 1; border-top: solid $panel-lighten-2; border-title-align: left; }
    """

    def __init__(self, *, fill_height: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fill_height = fill_height
        """Lay the counters out to the height it is given (a panel), or in two columns (a dialog)."""
        self._shown: object = None

    def show(self, pane: Pane | None) -> None:
        if pane is None:
            self.border_title = "no pane"
            return
        rows = counter_rows(pane.client)
        status = pane.status()
        fit_across = max(1, (self.content_size.width or 80) // LABEL_AND_VALUE)
        # A panel: as many columns as its height needs, below the status line; a dialog: two.
        height = max(1, (self.content_size.height or len(rows)) - 1)
        per_column = height if self.fill_height else -(-len(rows) // 2)
        columns = min(fit_across, -(-len(rows) // per_column))
        key = (pane.number, pane.mode, rows, columns, status.markup, pane.server_label)
        if key == self._shown:
            return
        same_shape = isinstance(self._shown, tuple) and (len(self._shown[2]), self._shown[3]) == (len(rows), columns)
        self._shown = key
        title = Text.assemble((f"{pane.number} {pane.mode}", "bold"))
        if pane.server_label is not None:
            title.append(f" {pane.server_label.strip()}", SERVER_STYLE)
        title.append_text(Text.assemble(" · ", pane.client.title, (" · every counter", "grey50")))
        self.border_title = title.markup
        self.update(Text("\n").join([status, counters_table(rows, columns)]), layout=not same_shape)


class PaneDetailScreen(ModalScreen[None]):
    """Every counter of one pane, live, over the app: reachable at any terminal size."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q,d", "dismiss", "Close")]

    DEFAULT_CSS: ClassVar[str] = """
    PaneDetailScreen { align: center middle; }
    PaneDetailScreen > PaneDetail {
        width: auto; min-width: 50; max-width: 95%; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1; border-title-align: left;
    }
    """

    def __init__(self, pane: Pane, refresh_interval: float = 0.5) -> None:
        super().__init__()
        self.pane = pane
        self.refresh_interval = refresh_interval
        self.detail = PaneDetail(fill_height=False, id="detail")

    def compose(self) -> ComposeResult:
        yield self.detail

    def on_mount(self) -> None:
        self.detail.show(self.pane)
        self.set_interval(self.refresh_interval, lambda: self.detail.show(self.pane))
