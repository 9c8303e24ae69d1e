"""The comparison row across panes: the lesson at a glance."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.coordinate import Coordinate
from textual.widgets import DataTable

from tui.format import fmt_bytes, fmt_count, fmt_ms, fmt_ratio
from tui.modes import ModeClient

__all__ = ["Comparison"]

COLUMNS = ("mode", "delay p50", "delay p95", "req/update", "bytes/update", "missed", "connections")


class Comparison(DataTable[str]):
    """Delay, requests and bytes per update, and misses, for every pane side by side."""

    DEFAULT_CSS: ClassVar[str] = """
    Comparison { height: auto; max-height: 9; margin: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True, show_cursor=False)
        self.can_focus = False
        self.shown_rows: list[tuple[str, ...]] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, clients: Iterable[ModeClient]) -> None:
        rows = [comparison_row(client) for client in clients]
        if rows == self.shown_rows:
            return
        if len(rows) != len(self.shown_rows):
            self.clear()
            for row in rows:
                self.add_row(*row)
        else:
            for y, (row, before) in enumerate(zip(rows, self.shown_rows, strict=True)):
                for x, (value, old) in enumerate(zip(row, before, strict=True)):
                    if value != old:
                        self.update_cell_at(Coordinate(y, x), value)
        self.shown_rows = rows


def comparison_row(client: ModeClient) -> tuple[str, ...]:
    stats = client.stats
    return (
        client.mode,
        fmt_ms(stats.delay_percentile(0.5)),
        fmt_ms(stats.delay_percentile(0.95)),
        fmt_ratio(stats.requests_per_update),
        fmt_bytes(stats.bytes_per_update),
        fmt_count(stats.missed),
        fmt_count(stats.open_connections),
    )
