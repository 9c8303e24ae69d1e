"""One pane: one mode client subscribed to the symbol, and what it costs, repainted at a capped rate.

The client records every tick as it arrives (that is where delay is measured); the pane only
samples it a few times a second, so 200 ticks a second cost the UI no more than 2 do.

A pane has two shapes, chosen by the app from the terminal's size: a card (side by side with the
others, every counter listed) or a row (one line each, stacked; the focused pane's counters are
then shown by `PaneDetail`). Both show the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.dom import NoScreen
from textual.widgets import Static

from tui.format import NO_VALUE, fmt_age, fmt_bytes, fmt_count, fmt_ms, fmt_price, fmt_ratio
from tui.modes import ConnectionState, ModeClient
from tui.runner import ClientThread
from tui.timeline import Published, published_strip, received_strip, window_for

__all__ = ["ROW_LABEL_WIDTH", "ClientFactory", "Pane", "counter_rows", "counters_table", "server_column_width"]

ClientFactory = Callable[[str, str], ModeClient]
"""(mode, symbol) -> a new client; the app decides server URL, clock and options."""

STATE_BADGES: dict[ConnectionState, tuple[str, str]] = {
    ConnectionState.CONNECTING: ("◌ connecting", "yellow"),
    ConnectionState.LIVE: ("● live", "green"),
    ConnectionState.RECONNECTING: ("◌ reconnecting", "yellow"),
    ConnectionState.UNREACHABLE: ("✕ unreachable", "red"),
    ConnectionState.FAILED: ("✕ failed", "red"),
    ConnectionState.STOPPED: ("■ stopped", "grey50"),
}
ROW_LABEL_WIDTH = 47
"""Cells before a pane row's timeline: marker, number, mode, state, price and age (and, with
several servers, the server column: `server_column_width` more)."""
BADGE_WIDTH = 14
CARD_LABEL_WIDTH = 10
"""Cells before a card's timeline strips ("published ")."""
STALE_AFTER = 5.0
"""Seconds without news after which a pane's own price is shown dimmed."""
SERVER_STYLE = "cyan"
"""A server's short name, wherever a pane shows it."""
Clock = Callable[[], float]


def server_column_width(labels: Mapping[str, str]) -> int:
    """Cells a pane row's server column takes (the longest short name and a space), or 0 with one server."""
    return max((len(label) + 1 for label in labels.values()), default=0)


class Pane(Vertical, can_focus=True):
    """A mode's live view: number, mode and state, its own last price and its age, counters."""

    DEFAULT_CSS: ClassVar[str] = """
    Pane { border: round $panel-lighten-2; padding: 0 1; height: auto; width: 1fr; }
    Pane:focus { border: round $accent; }
    Pane > Static { height: auto; }
    Pane > #title { text-style: bold; height: 2; }
    Pane > #explain { color: $text-muted; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    Pane > #seen { margin: 1 0 0 0; height: 1; }
    Pane > #timeline { margin: 0 0 1 0; height: 3; }
    Pane.row { border: none; padding: 0 1; height: 1; }
    Pane.row:focus { background: $boost; }
    Pane.row > #explain, Pane.row > #seen, Pane.row > #timeline, Pane.row > #counters { display: none; }
    Pane.row > #title { text-style: none; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(
        self,
        mode: str,
        symbol: str,
        make_client: ClientFactory,
        *,
        server_url: str = "",
        server_label: str | None = None,
        published: Callable[[], Sequence[Published]] = lambda: (),
        wall_clock: Clock = time.time,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.make_client = make_client
        self.symbol = symbol
        self.client: ModeClient = make_client(mode, symbol)
        self.server_url = server_url
        """The server this pane watches: its real URL (with an emulated link the client's own URL is
        the link's relay, on this machine)."""
        self.link_name: str | None = None
        """The emulated link in force (`tui.link`), named on the pane; None: straight to the server."""
        self.server_label = server_label
        """The server this pane talks to, in short (`:8101`, padded to the others' width), when the
        app talks to several; None with one (nothing to tell apart, nothing shown)."""
        self.published = published
        """Every tick published of the symbol watched now, from the app's reference subscriber:
        the timeline's top row (asked at each repaint: the symbol may have changed)."""
        self.wall_clock = wall_clock
        """Local time, for how old the pane's price is (a fixed clock in snapshot tests)."""
        self.number = 1
        """The pane's place on screen, 1-based (the app numbers them)."""
        self.paused = False
        self.ready = False
        """Mounted, children composed: painting may start."""
        self.runner: ClientThread | None = None
        self._seen_updates = 0
        self._seen_at: float | None = None
        """Local time the pane last saw a new update: its price's age."""
        # Held, not queried: a repaint timer may fire while the app tears the DOM down.
        self.parts: dict[str, Static] = {
            "#title": Static(id="title"),
            "#explain": Static(id="explain"),
            "#seen": Static(id="seen"),
            "#timeline": Static(id="timeline"),
            "#counters": Static(id="counters"),
        }
        self._shown: dict[str, object] = {}
        """What each child shows now, to skip updates that change nothing."""

    @property
    def mode(self) -> str:
        return self.client.mode

    @property
    def compact(self) -> bool:
        return self.has_class("row")

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
        self._seen_updates = 0
        self._seen_at = None
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
        self.client.reset_stats()
        self._seen_updates = 0
        self.repaint()

    # -- painting ------------------------------------------------------------------------------

    def repaint(self, figures: bool = True, published: Sequence[Published] | None = None) -> None:
        """Redraw what changed; the counters only with `figures` (they need not move faster
        than a person reads, and they are most of the rendering). `published` is a copy of the
        published ticks the caller already made (the app makes one for every pane)."""
        if not self.ready:
            return
        client = self.client
        now = self.wall_clock()
        if client.stats.updates != self._seen_updates:
            self._seen_updates = client.stats.updates
            self._seen_at = now
        published = list(self.published()) if published is None else published
        if self.compact:
            self._show("#title", self._row_line(self.parts["#title"].size.width, now, published))
        else:
            self._show("#title", self._title())
            self._show("#timeline", self._timeline(self.parts["#timeline"].size.width, now, published))
        self._show("#explain", (f"over {self.link_name} \u00b7 " if self.link_name else "") + client.explain())
        self._show("#seen", self._seen_line())
        if not figures:
            return
        rows = counter_rows(client)
        shown = self._shown.get("#counters")
        if rows != shown:
            self._shown["#counters"] = rows
            # Relayout (costly: it measures every widget) only when the number of rows changes.
            same_size = isinstance(shown, list) and len(shown) == len(rows)
            self.parts["#counters"].update(counters_table(rows), layout=not same_size)

    def _show(self, selector: str, content: Text | str) -> None:
        """Update a child only when what it shows changed: repaints are the UI's main cost."""
        key = content.markup if isinstance(content, Text) else content
        if self._shown.get(selector) != key:
            self._shown[selector] = key
            self.parts[selector].update(content, layout=False)  # every part has a fixed height

    def status(self) -> Text:
        """State, time to the next try and why the last failed: `● live`, `✕ unreachable · retry in 1.2 s (...)`."""
        client = self.client
        if self.paused:
            return Text("‖ paused", "grey50")
        badge, style = STATE_BADGES[client.state]
        retry = client.retry_in()
        if retry is not None and client.state is not ConnectionState.LIVE:
            badge += f" · retry in {retry:.1f} s"
        text = Text(badge, style)
        if client.error and client.state is not ConnectionState.LIVE:
            text.append(f" ({client.error})", "grey50")
        return text

    def _title(self) -> Text:
        client = self.client
        title = Text.assemble((f"{self.number} ", "bold"), (client.mode, "bold"))
        if self.server_label is not None:
            title.append(f" {self.server_label.strip()}", SERVER_STYLE)
        if self.server_label is None or title.cell_len + 3 + len(client.title) <= self.parts["#title"].size.width:
            title.append_text(Text.assemble(" · ", client.title))  # a narrow card keeps the server
        title.append("\n")
        title.append_text(self.status())
        return title

    def _seen_line(self, brief: bool = False) -> Text:
        """The pane's own last price and how long ago it came: poll's lag is part of the lesson."""
        tick = self.client.last_tick
        if tick is None:
            return Text(f"{NO_VALUE} no price yet", "grey50")
        age = None if self._seen_at is None else max(0.0, self.wall_clock() - self._seen_at)
        live = self.client.state is ConnectionState.LIVE and not self.paused
        stale = not live or (age is not None and age > STALE_AFTER)
        line = Text(fmt_price(tick.price), "grey50" if stale else "bold")
        if not brief:
            line.append(f"  seq {tick.seq}", "grey50")
        if age is not None:
            line.append(f" {fmt_age(age)}" if brief else f"  {fmt_age(age)} ago", "grey50")
        return line

    def _received(self, width: int, now: float, published: Sequence[Published]) -> Text:
        window = window_for(width)
        client = self.client
        return received_strip(
            list(client.events),
            published,
            now=now,
            window=window,
            width=width,
            running_since=client.running_since,
        )

    def _timeline(self, width: int, now: float, published_ticks: Sequence[Published]) -> Text:
        """Card: the last seconds, published above, received by this pane below."""
        strip = max(0, width - CARD_LABEL_WIDTH)
        window = window_for(strip)
        heading = Text(f"last {window:g} s".ljust(CARD_LABEL_WIDTH), "grey62")
        published = Text("published".ljust(CARD_LABEL_WIDTH), "grey62")
        received = Text("received".ljust(CARD_LABEL_WIDTH), "grey62")
        legend = Text.assemble(("● got ", "green"), ("✕ missed ", "red"), ("· empty", "grey42"))
        legend.truncate(strip)
        return Text("\n").join(
            [
                heading + legend,
                published + published_strip(published_ticks, now=now, window=window, width=strip),
                received + self._received(strip, now, published_ticks),
            ]
        )

    @property
    def marked(self) -> bool:
        """Focused on its own screen: still so while a window (help, details) is over that screen,
        where Textual's focus has moved."""
        try:
            return self.screen.focused is self
        except NoScreen:  # (not yet on a screen, or no longer)
            return False

    def _row_line(self, width: int, now: float, published: Sequence[Published]) -> Text:
        """The whole pane on one line: number, mode, state, own price and its age, its timeline."""
        marker = "▸" if self.marked else " "
        label = Text.assemble((marker, "bold #ffa62b"), (f"{self.number} ", "bold"), (f"{self.client.mode:<9}", "bold"))
        label_width = ROW_LABEL_WIDTH
        if self.server_label is not None:
            label.append(f"{self.server_label} ", SERVER_STYLE)
            label_width += len(self.server_label) + 1  # as `server_column_width`: the app's published row lines up
        badge = self.status()
        badge.truncate(BADGE_WIDTH - 1, overflow="ellipsis", pad=True)
        label.append_text(badge)
        label.append(" ")
        seen = self._seen_line(brief=True)
        seen.truncate(label_width - label.cell_len - 1, overflow="ellipsis", pad=True)
        label.append_text(seen)
        label.append(" ")
        return label + self._received(max(0, width - label_width), now, published)


def counter_rows(client: ModeClient) -> list[tuple[str, str]]:
    """Every counter of a client, labelled, in a fixed order (so rows line up across panes)."""
    stats = client.stats
    rows = [
        ("delay", fmt_ms(stats.last_delay_ms)),
        ("delay p50", fmt_ms(stats.delay_percentile(0.5))),
        ("delay p95", fmt_ms(stats.delay_percentile(0.95))),
        ("updates", fmt_count(stats.updates)),
        ("missed", fmt_count(stats.missed)),
        ("replayed", fmt_count(stats.replayed)),
        ("duplicates", fmt_count(stats.duplicates)),
        ("requests", fmt_count(stats.requests)),
        ("empty", fmt_count(stats.empty_responses)),
        ("req/update", fmt_ratio(stats.requests_per_update)),
        ("wire bytes", fmt_bytes(stats.wire_bytes)),
        ("wire/update", fmt_bytes(stats.wire_bytes_per_update)),
        ("payload", fmt_bytes(stats.bytes_received)),
        ("connections", fmt_count(stats.open_connections)),
        ("reconnects", fmt_count(stats.reconnects)),
        ("gaps", fmt_count(stats.gaps)),
    ]
    if client.mode == "webhook":
        rows.append(("rejected", fmt_count(stats.rejected)))
    return rows


LABEL_WIDTH = 11
VALUE_WIDTH = 8


def counters_table(rows: list[tuple[str, str]], columns: int = 1) -> Text:
    """Label / value pairs, `columns` pairs side by side, in fixed-width cells (plain text is much
    cheaper to render than a table, and these repaint on every tick)."""
    per_column = -(-len(rows) // columns)
    lines: list[Text] = []
    for index in range(per_column):
        line = Text(no_wrap=True, overflow="crop")
        for column in range(columns):
            position = column * per_column + index
            if position >= len(rows):
                break
            label, value = rows[position]
            if column:
                line.append("  ")
            line.append(label.ljust(LABEL_WIDTH), "grey62")
            line.append(value.rjust(VALUE_WIDTH))
        lines.append(line)
    return Text("\n").join(lines)
