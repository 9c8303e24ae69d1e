"""The server bar: which server(s), and the servers' own view of what the panes cost them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from rich.text import Text
from textual.widgets import Static

from tui.format import fmt_bytes, fmt_count
from tui.server_figures import held_connections, requests_served
from tui.widgets.pane import SERVER_STYLE

__all__ = ["ServerBar"]


class ServerBar(Static):
    """One line: URL, broker, tick rate; open connections per transport, requests, RSS.

    With several servers: each one's short name and the process (`instance`) answering there,
    and the connections, RSS and requests of them all.

    Example:

        bar = ServerBar(["http://a:8101", "http://a:8102"], labels=[":8101", ":8102"], embedded=False)
        bar.show(stats, None, "http://a:8102")
    """

    DEFAULT_CSS: ClassVar[str] = """
    ServerBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(
        self,
        server_urls: Sequence[str],
        *,
        embedded: bool,
        names: Sequence[str] | None = None,
        labels: Sequence[str] = (),
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.server_urls = list(server_urls)
        self.names = list(names) if names is not None else self.server_urls
        """What the bar calls each server (a test's picture must not show a port that changes)."""
        self.labels = list(labels) or self.names
        """Each server's short name, with several (`:8101`)."""
        self.embedded = embedded
        self.link: str | None = None
        """The emulated link the panes talk over (`tui.link`), in short; None: straight to the server."""
        self.readings: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        """Each server's last `/api/stats` answer, or why there was none."""

    @property
    def stats(self) -> dict[str, Any] | None:
        """The first server's last `/api/stats` answer."""
        return self.readings.get(self.server_urls[0], (None, None))[0]

    @property
    def error(self) -> str | None:
        return self.readings.get(self.server_urls[0], (None, None))[1]

    def on_mount(self) -> None:
        self.show_readings()

    def on_resize(self) -> None:
        self.show_readings()

    def show(
        self, stats: dict[str, Any] | None = None, error: str | None = None, server_url: str | None = None
    ) -> None:
        """A server's stats (the first server's when `server_url` is not given), or why there are none."""
        self.readings[server_url or self.server_urls[0]] = (stats, error)
        self.show_readings()

    def show_link(self, link: str | None) -> None:
        self.link = link
        self.show_readings()

    def show_readings(self) -> None:
        parts = self._one_server() if len(self.server_urls) == 1 else self._servers()
        if self.link is not None:  # its name kept at any width (the panes' figures mean nothing without it)
            name, _, detail = self.link.partition(": ")
            parts[2:2] = [(0, Text(f"over {name}", "bold magenta")), (2, Text(detail, "magenta"))]
        self.update(fit_parts(parts, self.content_size.width or 80), layout=False)  # always one line

    def _one_server(self) -> list[tuple[int, Text]]:
        stats, error = self.stats, self.error
        parts: list[tuple[int, Text]] = [(0, Text("pushpull", "bold"))]
        where = Text(self.names[0].removeprefix("http://"))
        if self.embedded:
            where.append(" (bundled)", "grey62")
        parts.append((1, where))
        if error is not None:
            parts.append((0, Text(f"server: {error}", "red")))
        elif stats is not None:
            if (trouble := broker_trouble(stats)) is not None:
                parts.append((0, trouble))
            parts.append((2, Text(f"{stats.get('tick_rate', 0):g} ticks/s")))
            parts.append((3, Text(held_phrase(held_connections(stats)))))
            parts.append((4, Text(f"RSS {fmt_bytes(stats.get('rss_bytes', 0))}")))
            parts.append((5, Text(f"{fmt_count(requests_served(stats))} requests")))
            parts.append((6, Text(f"broker {stats.get('broker', '?')}")))
            if stats.get("instance"):
                parts.append((7, Text(f"instance {stats['instance']}", "grey62")))
        return parts

    def _servers(self) -> list[tuple[int, Text]]:
        """Each server's short name and instance (or its error), then what they add up to.

        No tick rate: several simulators may feed one broker, so no one server's rate is the feed's."""
        parts: list[tuple[int, Text]] = [(0, Text("pushpull", "bold"))]
        hosts = {urlsplit(url).hostname for url in self.server_urls}
        if len(hosts) == 1 and all(label.startswith(":") for label in self.labels):
            parts.append((7, Text(str(hosts.pop()))))  # the labels are only ports: the host they share
        answers: list[dict[str, Any]] = []
        for url, label in zip(self.server_urls, self.labels, strict=True):
            stats, error = self.readings.get(url, (None, None))
            text = Text(label, SERVER_STYLE)
            if error is not None:
                text.append(f" {error}", "red")
            elif stats is not None:
                text.append(f" {stats.get('instance', '?')}")
                answers.append(stats)
            parts.append((1, text))
        if not answers:
            return parts
        troubles = [trouble for stats in answers if (trouble := broker_trouble(stats)) is not None]
        if troubles:  # (once: they share a broker, and the bar must keep room for every server)
            parts.insert(1, (0, troubles[0]))
        epochs = {stats.get("epoch") for stats in answers}
        if len(epochs) > 1:  # not one history: the same tick has different seqs on them
            parts.append((2, Text("separate feeds (epochs differ)", "yellow")))
        parts.append((3, Text(held_phrase(sum(map(held_connections, answers))))))
        parts.append((4, Text("RSS " + " + ".join(fmt_bytes(stats.get("rss_bytes", 0)) for stats in answers))))
        parts.append((5, Text(f"{fmt_count(sum(map(requests_served, answers)))} requests")))
        brokers = sorted({str(stats.get("broker", "?")) for stats in answers})
        parts.append((6, Text(f"broker{'s' if len(brokers) > 1 else ''} {', '.join(brokers)}")))
        return parts


def broker_trouble(stats: dict[str, Any]) -> Text | None:
    """A short red word when the server's broker cannot serve (its `/api/stats` `broker_problem`):
    while Redis is away, push panes stay connected but quiet, and this says why."""
    problem = stats.get("broker_problem")
    if not problem:
        return None
    what = "unreachable" if "unreachable" in str(problem) else "refusing"
    return Text(f"broker {what}", "bold red")


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


def held_phrase(count: int) -> str:
    return f"{count} held connection{'' if count == 1 else 's'}"
