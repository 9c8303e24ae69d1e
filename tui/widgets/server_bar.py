"""The server bar: which server, and the server's own view of what the panes cost it."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import Static

from tui.format import fmt_bytes, fmt_count

__all__ = ["ServerBar"]


class ServerBar(Static):
    """One line: URL, broker, tick rate; open connections per transport, requests, RSS."""

    DEFAULT_CSS: ClassVar[str] = """
    ServerBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, server_url: str, *, embedded: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.server_url = server_url
        self.embedded = embedded
        self.stats: dict[str, Any] | None = None
        self.error: str | None = None

    def on_mount(self) -> None:
        self.show()

    def on_resize(self) -> None:
        self.show(self.stats, self.error)

    def show(self, stats: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.stats, self.error = stats, error
        parts: list[tuple[int, Text]] = [(0, Text("pushpull", "bold"))]
        where = Text(self.server_url.removeprefix("http://"))
        if self.embedded:
            where.append(" (bundled)", "grey62")
        parts.append((1, where))
        if error is not None:
            parts.append((0, Text(f"server: {error}", "red")))
        elif stats is not None:
            transports: dict[str, dict[str, int]] = stats.get("transports", {})
            parts.append((2, Text(f"{stats.get('tick_rate', 0):g} ticks/s")))
            held = sum(counters.get("open_connections", 0) for counters in transports.values())
            parts.append((3, Text(f"{held} held connections")))
            parts.append((4, Text(f"RSS {fmt_bytes(stats.get('rss_bytes', 0))}")))
            requests = sum(counters.get("requests", 0) for counters in transports.values())
            parts.append((5, Text(f"{fmt_count(requests)} requests")))
            parts.append((6, Text(f"broker {stats.get('broker', '?')}")))
            if stats.get("instance"):
                parts.append((7, Text(f"instance {stats['instance']}", "grey62")))
        self.update(fit_parts(parts, self.content_size.width or 80), layout=False)  # always one line


def fit_parts(parts: list[tuple[int, Text]], width: int, separator: str = " · ") -> Text:
    """Join as many parts as fit in `width`, keeping those of lowest priority number first."""
    kept: set[int] = set()
    used = 0
    for index, (_, part) in sorted(enumerate(parts), key=lambda pair: pair[1][0]):
        cost = part.cell_len + (len(separator) if kept else 0)
        if used + cost <= width:
            kept.add(index)
            used += cost
    return Text(separator).join(part for index, (_, part) in enumerate(parts) if index in kept)
