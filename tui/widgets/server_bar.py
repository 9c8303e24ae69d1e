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

    def __init__(self, server_url: str, *, symbol: str, embedded: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.symbol = symbol
        self.server_url = server_url
        self.embedded = embedded
        self.stats: dict[str, Any] | None = None
        self.error: str | None = None

    def on_mount(self) -> None:
        self.show()

    def show(self, stats: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.stats, self.error = stats, error
        line = Text.assemble(("pushpull", "bold"), " · ", (self.symbol, "bold"), " · ", self.server_url)
        if self.embedded:
            line.append(" (embedded)", "grey62")
        if error is not None:
            line.append(f" · server: {error}", "red")
        elif stats is not None:
            transports: dict[str, dict[str, int]] = stats.get("transports", {})
            rate = stats.get("tick_rate", 0)
            line.append(f" · broker {stats.get('broker', '?')} · {rate:g} ticks/s")
            open_by_mode = " ".join(
                f"{name} {counters.get('open_connections', 0)}" for name, counters in transports.items()
            )
            requests = sum(counters.get("requests", 0) for counters in transports.values())
            line.append(f" · open: {open_by_mode} · requests {fmt_count(requests)}")
            line.append(f" · RSS {fmt_bytes(stats.get('rss_bytes', 0))}")
        self.update(line)
