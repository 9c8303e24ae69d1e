"""One pane: one mode client subscribed to the symbol, and what it costs, repainted at a capped rate.

The client records every tick as it arrives (that is where delay is measured); the pane only
samples it a few times a second, so 200 ticks a second cost the UI no more than 2 do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Digits, Sparkline, Static

from tui.format import NO_VALUE, fmt_bytes, fmt_count, fmt_ms, fmt_ratio
from tui.modes import ConnectionState, ModeClient
from tui.runner import ClientThread

__all__ = ["ClientFactory", "Pane"]

ClientFactory = Callable[[str, str], ModeClient]
"""(mode, symbol) -> a new client; the app decides server URL, clock and options."""

STATE_BADGES: dict[ConnectionState, tuple[str, str]] = {
    ConnectionState.CONNECTING: ("◌ connecting", "yellow"),
    ConnectionState.LIVE: ("● live", "green"),
    ConnectionState.RECONNECTING: ("◌ reconnecting", "yellow"),
    ConnectionState.UNREACHABLE: ("✕ unreachable", "red"),
    ConnectionState.FAILED: ("✕ failed (a bug: see the log)", "red"),
    ConnectionState.STOPPED: ("■ stopped", "grey50"),
}


class Pane(Vertical, can_focus=True):
    """A mode's live view: state, how it works, price, sparkline, counters."""

    DEFAULT_CSS: ClassVar[str] = """
    Pane { border: round $panel-lighten-2; padding: 0 1; height: 1fr; width: 1fr; min-width: 28; }
    Pane:focus { border: round $accent; }
    Pane > #title { text-style: bold; }
    Pane > #explain { color: $text-muted; }
    Pane > Digits { width: auto; margin: 1 0 0 0; }
    Pane.up > Digits { color: $success; }
    Pane.down > Digits { color: $error; }
    Pane > Sparkline { height: 3; margin: 0 0 1 0; }
    """

    def __init__(self, mode: str, symbol: str, make_client: ClientFactory, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.make_client = make_client
        self.symbol = symbol
        self.client: ModeClient = make_client(mode, symbol)
        self.paused = False
        self._seen_updates = 0
        self.ready = False
        self.runner: ClientThread | None = None
        # Held, not queried: a repaint timer may fire while the app tears the DOM down.
        self.parts: dict[str, Static | Digits | Sparkline] = {
            "#title": Static(id="title"),
            "#explain": Static(id="explain"),
            "#price": Digits(NO_VALUE, id="price"),
            "#spark": Sparkline([], id="spark"),
            "#counters": Static(id="counters"),
        }
        self.price = cast(Digits, self.parts["#price"])
        self.spark = cast(Sparkline, self.parts["#spark"])
        self._shown: dict[str, object] = {}
        """What each child shows now, to skip updates that change nothing."""
        """Mounted, children composed: painting may start."""

    @property
    def mode(self) -> str:
        return self.client.mode

    def compose(self) -> ComposeResult:
        yield from self.parts.values()

    def on_mount(self) -> None:
        self.ready = True
        self.start_client()
        self.repaint()

    # -- the client ----------------------------------------------------------------------------

    def start_client(self) -> None:
        """Run the client on its own thread and loop (see `tui.runner` for why)."""
        if self.paused or not self.ready:
            return
        previous = self.runner
        if previous is not None:
            previous.stop()
        # The same client run again (a resume) waits, on its new thread, for its previous run.
        same_client = previous is not None and previous.client is self.client
        self.runner = ClientThread(self.client, after=previous if same_client else None)
        self.runner.start()

    def stop_client(self) -> None:
        """Ask the client to stop; never waits (it ends on its own thread)."""
        if self.runner is not None:
            self.runner.stop()

    def on_unmount(self) -> None:
        self.stop_client()

    def replace_client(self, mode: str | None = None, symbol: str | None = None) -> None:
        """Switch mode or symbol: a fresh client, fresh counters."""
        self.stop_client()
        self.symbol = symbol or self.symbol
        self.client = self.make_client(mode or self.mode, self.symbol)
        self.spark.data = []
        self._seen_updates = 0
        self.remove_class("up", "down")
        self.start_client()
        self.repaint()

    def set_paused(self, paused: bool) -> None:
        """Pausing stops receiving; resuming re-runs the same client, which resumes from its cursor."""
        if paused == self.paused:
            return
        self.paused = paused
        if paused:
            self.stop_client()
        else:
            self.client.resume_after_pause()
            self.start_client()
        self.repaint()

    def reset_counters(self) -> None:
        self.client.stats.reset()
        self._seen_updates = 0
        self.repaint()

    # -- painting ------------------------------------------------------------------------------

    def repaint(self) -> None:
        if not self.ready:
            return
        client = self.client
        stats = client.stats
        self._show("#title", self._title())
        self._show("#explain", client.explain())
        tick = client.last_tick
        if tick is not None and stats.updates != self._seen_updates:
            self._seen_updates = stats.updates
            self.price.update(f"{tick.price:.2f}")
            prices = list(client.recent_prices)
            if len(prices) > 1:  # one point would draw as a solid block
                self.spark.data = prices
            previous = client.previous_price
            self.set_class(previous is not None and tick.price > previous, "up")
            self.set_class(previous is not None and tick.price < previous, "down")
        rows = self._counter_rows()
        if rows != self._shown.get("#counters"):
            self._shown["#counters"] = rows
            cast(Static, self.parts["#counters"]).update(counters_table(rows))

    def _show(self, selector: str, content: Text | str) -> None:
        """Update a child only when what it shows changed: repaints are the UI's main cost."""
        key = content.markup if isinstance(content, Text) else content
        if self._shown.get(selector) != key:
            self._shown[selector] = key
            cast(Static, self.parts[selector]).update(content)

    def _title(self) -> Text:
        client = self.client
        title = Text.assemble((client.mode, "bold"), " · ", client.title)
        if self.paused:
            badge, style = "‖ paused", "grey50"
        else:
            badge, style = STATE_BADGES[client.state]
            retry = client.retry_in()
            if retry is not None and client.state is not ConnectionState.LIVE:
                badge += f" · retry in {retry:.1f} s"
        title.append("\n")
        title.append(badge, style)
        if client.error and client.state is not ConnectionState.LIVE:
            title.append(f" ({client.error})", "grey50")
        return title

    def _counter_rows(self) -> list[tuple[str, str]]:
        stats = self.client.stats
        rows = [
            ("delay", fmt_ms(stats.last_delay_ms)),
            ("delay p50", fmt_ms(stats.delay_percentile(0.5))),
            ("delay p95", fmt_ms(stats.delay_percentile(0.95))),
            ("updates", fmt_count(stats.updates)),
            ("missed", fmt_count(stats.missed)),
            ("duplicates", fmt_count(stats.duplicates)),
            ("requests", fmt_count(stats.requests)),
            ("empty", fmt_count(stats.empty_responses)),
            ("req/update", fmt_ratio(stats.requests_per_update)),
            ("bytes", fmt_bytes(stats.bytes_received)),
            ("connections", fmt_count(stats.open_connections)),
            ("reconnects", fmt_count(stats.reconnects)),
            ("gaps", fmt_count(stats.gaps)),
        ]
        if stats.replayed:
            rows.append(("replayed", fmt_count(stats.replayed)))
        if stats.rejected:
            rows.append(("rejected", fmt_count(stats.rejected)))
        return rows


def counters_table(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="grey62")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table
