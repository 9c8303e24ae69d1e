"""PushPullApp: side-by-side panes, one mode each, on the same symbol; keys to switch and compare."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import httpx
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.dom import NoScreen
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Static

from server.schema import Tick
from tui.advisor import AdvisorData, advisor_data
from tui.alerts import AlertBook, AlertRule, Crossing, first_seen_by, seen_report
from tui.config import save as save_config
from tui.defaults import DEFAULT_MODES, DEFAULT_POLL_INTERVAL, DEFAULT_SYMBOL, MAX_PANES, POLL_INTERVALS
from tui.desktop import notify_desktop
from tui.export import comparison, write_comparison
from tui.format import server_labels
from tui.link import PROFILES, Link, LinkProfile
from tui.link.clients import through_link
from tui.messages import AlertCrossed, ServerStatsFetched
from tui.modes import MODES, Backoff, ConnectionState, ModeClient, ServerClock, make_client
from tui.reference import ReferenceFeed
from tui.theory import poll_theory_over
from tui.timeline import Published, published_strip, window_for
from tui.widgets import (
    AdvisorScreen,
    AlertsScreen,
    Comparison,
    ComparisonRow,
    HelpScreen,
    Pane,
    PaneDetail,
    PaneDetailScreen,
    QuoteHeader,
    ServerBar,
    WatchlistScreen,
)
from tui.widgets.alerts import suggested_rule
from tui.widgets.comparison import theory_shown
from tui.widgets.key_bar import KeyBar, KeyHint, key_hints
from tui.widgets.pane import ROW_LABEL_WIDTH, server_column_width

__all__ = ["POLL_INTERVALS", "PushPullApp", "next_poll_interval"]

REFRESH_INTERVAL = 0.5
"""Seconds between repaints: what keeps watching cheap (the app's CPU at the defaults is in
README); ticks are measured as they arrive, on the clients' threads, whatever this is."""
FIGURES_EVERY = 2
"""Repaints per redraw of the figures (counters, comparison): once a second at the default."""
STARTUP_GRACE = 1.0
"""Seconds after start-up whose delays are not recorded: the app's own first renders hold the
GIL, and the ticks that wait behind them would be counted against the modes."""
MODE_KEYS = ("poll", "longpoll", "sse", "ws", "webhook")
"""What keys 1..5 select, in SPEC's order."""


LINK_CLOSE_AFTER = 3.0
"""Seconds an emulated link's relays outlive the clients that used them, so they can close through
it (and a webhook deregister)."""
ALERT_REPORT_WAIT = 10.0
"""Seconds at most a fired alert's notice waits for every pane to see the crossing tick."""
ALERT_REPORT_STEP = 0.05
"""Seconds between looks at whether every pane has seen it."""
ALERT_NOTICE_SECONDS = 12.0
"""How long a fired alert's notice stays on screen."""


def next_poll_interval(current: float, step: int) -> float:
    """The next step above (`step` > 0) or below the current interval, whatever it is now."""
    if step > 0:
        return next((s for s in POLL_INTERVALS if s > current * 1.0001), current)
    return next((s for s in reversed(POLL_INTERVALS) if s < current * 0.9999), current)


FOCUS_GROUP = Binding.Group("Focus")
MODE_GROUP = Binding.Group("Mode", compact=True)
PANE_GROUP = Binding.Group("Pane", compact=True)
INTERVAL_GROUP = Binding.Group("Interval", compact=True)


class PushPullApp(App[None]):
    """The same ticks by poll, long poll, SSE and WebSocket, side by side, with what each costs."""

    CSS_PATH = "app.tcss"
    TITLE = "pushpull"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority, so these (not the screen's hidden ones) answer and show in the Footer.
        Binding("tab", "app.focus_next", "Next pane", group=FOCUS_GROUP, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous pane", group=FOCUS_GROUP, priority=True),
        Binding("m", "cycle_mode(1)", "Next mode", group=MODE_GROUP),
        Binding("M", "cycle_mode(-1)", "Previous mode", group=MODE_GROUP),
        *(Binding(str(n), f"set_mode('{mode}')", mode, group=MODE_GROUP) for n, mode in enumerate(MODE_KEYS, start=1)),
        Binding("plus,equals_sign", "poll_interval(1)", "Slower poll", group=INTERVAL_GROUP),
        Binding("minus", "poll_interval(-1)", "Faster poll", group=INTERVAL_GROUP),
        Binding("s", "next_symbol", "Symbol"),
        Binding("l", "watchlist", "Watchlist"),
        Binding("n", "alerts", "Alerts"),
        Binding("r", "reset_counters", "Reset"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("a", "add_pane", "Add pane", group=PANE_GROUP),
        Binding("x", "remove_pane", "Remove pane", group=PANE_GROUP),
        Binding("enter,d", "details", "Details"),
        Binding("w", "save_settings", "Save settings", show=False),
        Binding("e", "export", "Export", show=False),
        Binding("i", "advisor", "Advisor"),
        Binding("L", "next_link", "Network"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Tab / Shift+Tab", "focus the next / previous pane"),
        ("m / M", "cycle the focused pane's mode forward / back"),
        ("1 2 3 4 5", "set the focused pane to poll, longpoll, sse, ws, webhook"),
        ("+ / -", "poll less / more often (every poll pane)"),
        ("s", "next symbol (every pane)"),
        ("l", "watchlist: every symbol's price and trend; type or pick one for the panes"),
        ("n", "price alerts: add one for this symbol a step above its price, list and remove them"),
        ("i", "interval advisor: poll costs against the interval, and the interval for a delay"),
        ("L", "next network profile for every pane: loopback, lan, broadband, 4g, 3g, satellite"),
        ("r", "reset every pane's counters"),
        ("p", "pause / resume receiving (push modes resume from their cursor)"),
        ("a / x", "add a pane / remove the focused pane"),
        ("Enter / d", "every counter of the focused pane"),
        ("w", "save the symbol, panes, interval, alerts, theme and network to the config file"),
        ("e", "export the comparison (every pane's figures, and theory) to CSV and JSON"),
        ("? / F1", "this help"),
        ("Ctrl+P", "command palette: every action above by name"),
        ("q", "quit"),
    ]

    def __init__(
        self,
        server_urls: str | Sequence[str],
        *,
        symbol: str = DEFAULT_SYMBOL,
        modes: Sequence[str] = DEFAULT_MODES,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        embedded: bool = False,
        refresh_interval: float = REFRESH_INTERVAL,
        stats_interval: float | None = 1.0,
        clock: ServerClock | None = None,
        backoff: Backoff | None = None,
        seed: int | None = None,
        wall_clock: Callable[[], float] = time.time,
        startup_grace: float = STARTUP_GRACE,
        server_name: str | None = None,
        webhook_token: str | None = None,
        theme: str | None = None,
        config_path: Path | None = None,
        export_dir: Path | None = None,
        alerts: Sequence[AlertRule] = (),
        desktop_notifications: bool = False,
        alert_report_wait: float = ALERT_REPORT_WAIT,
        link: LinkProfile | None = None,
    ) -> None:
        super().__init__()
        urls = [server_urls] if isinstance(server_urls, str) else list(server_urls)
        if not urls:
            raise ValueError("no server URL")
        self.server_urls = tuple(url.rstrip("/") for url in urls)
        """Every server the panes talk to: pane i to `server_urls[i % n]` (several share one broker)."""
        self.server_url = self.server_urls[0]
        """The first server: the reference subscriber's, and where the symbols come from."""
        self.server_labels: dict[str, str] = {}
        """Each server's short name, padded so pane rows line up; empty with one server (nothing to tell apart)."""
        if len(self.server_urls) > 1:
            labels = server_labels(self.server_urls)
            width = max(map(len, labels))
            self.server_labels = {url: label.ljust(width) for url, label in zip(self.server_urls, labels, strict=True)}
        self.symbol = symbol
        self.initial_modes = tuple(modes)
        self.poll_interval = poll_interval
        self.embedded = embedded
        self.refresh_interval = refresh_interval
        """Seconds between repaints of the panes (the cap that keeps a fast feed cheap)."""
        self.stats_interval = stats_interval
        """Seconds between `/api/stats` reads for the server bar; None: never (tests)."""
        self.clock = clock
        self.backoff = backoff
        self.seed = seed
        self.wall_clock = wall_clock
        """Local time for ages and timelines (a fixed one in snapshot tests)."""
        self.startup_grace = startup_grace
        self.webhook_token = webhook_token
        """What webhook panes register with (`--webhook-token`)."""
        self.initial_theme = theme
        self.config_path = config_path
        """Where the save key writes the settings (`tui.config`); None: nowhere."""
        self.export_dir = export_dir if export_dir is not None else Path.cwd()
        """Where the export key writes the comparison (`tui.export`): the working directory by default."""
        self.link_profile = link if link is not None else PROFILES["loopback"]
        """The network the panes' clients talk over (`tui.link`; the reference feed never does:
        it is the ground truth they are measured against)."""
        self.link: Link | None = None
        """Its relays, while the profile emulates one (made at the first client)."""
        self.custom_link = link if link is not None and link.name not in PROFILES else None
        """A link of the user's own (`--latency`), which `L` comes back to after the named ones."""
        self.alert_book = AlertBook(alerts)
        """The price alerts watched (`--alert`, the settings file, the alerts window)."""
        self.fired: dict[AlertRule, Crossing] = {}
        self._alert_epochs: dict[str, str] = {}
        """Each symbol's epoch as the alerts last saw it (on the market feed's thread)."""
        """Each alert's last crossing this session."""
        self.desktop_notifications = desktop_notifications
        """Whether a fired alert also goes to the desktop (`notify-send`); off in tests."""
        self.alert_report_wait = alert_report_wait
        """Seconds at most a fired alert's notice waits for every pane to see the crossing."""
        self.symbols: list[str] = [symbol]
        self.simulated: bool | None = None
        """Whether the server's feed is its simulator (from `/api/stats`)."""
        self.server_tick_rate: float | None = None
        """The simulator's configured rate, when the server says; else theory uses the measured one."""
        self.paused = False
        self._pane_ids = 0
        # Held, not queried: queries look at the active screen, and help may be on top. It shows
        # `server_name` instead of the URL if given: a picture that must not show the port (tests).
        self.server_bar = ServerBar(
            self.server_urls,
            names=[server_name] if server_name and len(self.server_urls) == 1 else None,
            labels=[label.strip() for label in self.server_labels.values()],
            embedded=embedded,
            id="server-bar",
        )
        self.quote_header = QuoteHeader(id="quote")
        self.reference = ReferenceFeed(self.server_url, symbol, clock=clock, backoff=backoff, seed=seed)
        self.published_row = Static(id="published-row")
        self.pane_box = Container(id="panes")
        self.comparison = Comparison(id="comparison")
        self.pane_detail = PaneDetail(id="pane-detail")
        self.card_columns = 0
        """Panes side by side as cards (how many columns), or 0: one row per pane."""
        self._repaints = 0

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.server_bar
        yield self.quote_header
        yield self.published_row
        with self.pane_box:
            for index, mode in enumerate(self.initial_modes):
                yield self._new_pane(mode, self.server_urls[index % len(self.server_urls)])
        yield self.comparison
        yield self.pane_detail
        yield KeyBar([*key_hints(self.BINDINGS, KEY_PRIORITY), KeyHint("^p", "Palette", len(KEY_PRIORITY))])

    def on_mount(self) -> None:
        if self.initial_theme is not None:
            self.theme = self.initial_theme
        self.server_bar.show_link(self.link_name)
        self.reference.market.listeners.append(self.watch_alerts)
        self.reference.start()
        self.set_interval(self.refresh_interval, self.on_repaint_timer)
        self.load_symbols()
        if self.stats_interval is not None:
            self.watch_server_stats()
        panes = self.panes
        for pane in panes:  # the app's first renders hold the GIL: not the modes' delay
            pane.client.measure_after = pane.client.clock.local() + self.startup_grace
        if panes:
            panes[0].focus()
        self.repaint()

    def _new_pane(self, mode: str, url: str) -> Pane:
        """A pane in `mode` talking to the server at `url` (one of `server_urls`)."""
        self._pane_ids += 1

        def make_pane_client(mode: str, symbol: str) -> ModeClient:
            return self.make_client(mode, symbol, url)

        pane = Pane(
            mode,
            self.symbol,
            make_pane_client,
            server_url=url,
            server_label=self.server_labels.get(url),
            published=lambda: self.reference.published,
            wall_clock=self.wall_clock,
            id=f"pane-{self._pane_ids}",
        )
        pane.link_name = self.link_profile.name if self.link_profile.emulates else None
        return pane

    @property
    def link_latency_s(self) -> float:
        """The emulated link's one-way latency, for theory (0 on loopback)."""
        return self.link_profile.latency_ms / 1000 if self.link_profile.emulates else 0.0

    def theory_rows(self, panes: list[Pane]) -> int:
        """Lines of theory the comparison shows: under every poll pane, and every pane over a link."""
        return sum(theory_shown(pane.mode, self.link_latency_s) for pane in panes)

    @property
    def link_name(self) -> str | None:
        """The link in force, in short, for the bar and the panes; None on loopback."""
        return self.link_profile.describe() if self.link_profile.emulates else None

    def _relays(self) -> Link | None:
        if not self.link_profile.emulates:
            return None
        if self.link is None:
            self.link = Link(self.link_profile, seed=self.seed)
        return self.link

    def next_server_url(self) -> str:
        """The server with the fewest panes (the first of those): pane i of a fresh app gets
        server i mod n, and a pane added after one was removed fills the gap."""
        counts = dict.fromkeys(self.server_urls, 0)
        for pane in self.panes:
            counts[pane.server_url] += 1
        return min(self.server_urls, key=lambda url: counts[url])

    def make_client(self, mode: str, symbol: str, server_url: str | None = None) -> ModeClient:
        """A client for a pane: through the link's relay when a link is emulated (a webhook's
        deliveries too: the server is given the relay in front of its receiver)."""
        target, options = through_link(self._relays(), mode, server_url or self.server_url)
        if self.clock is not None:  # (an injected one wins: tests)
            options["clock"] = self.clock
        if mode == "webhook":
            options["webhook_token"] = self.webhook_token
        return make_client(
            mode, target, symbol, poll_interval=self.poll_interval, backoff=self.backoff, seed=self.seed, **options
        )

    @property
    def panes(self) -> list[Pane]:
        return list(self.pane_box.query(Pane))

    @property
    def focused_pane(self) -> Pane | None:
        """The pane focused on the panes' screen, also while a window (help, details) is over it."""
        try:
            focused = self.pane_box.screen.focused
        except NoScreen:  # (not yet on a screen, or no longer)
            return None
        return focused if isinstance(focused, Pane) else None

    def on_repaint_timer(self) -> None:
        if not self.screen_stack:  # the app is closing: its screens are gone before its timers
            return
        self._repaints += 1
        self.repaint(figures=self._repaints % FIGURES_EVERY == 0)

    def repaint(self, figures: bool = True) -> None:
        """Timelines, ages and the quote at every call; the figures only with `figures`."""
        panes = self.panes
        now = self.wall_clock()
        published = list(self.reference.published)  # one copy for every timeline on screen
        for number, pane in enumerate(panes, start=1):
            pane.number = number
            pane.repaint(figures, published)
        focused = self.focused_pane
        if figures:
            rows = [ComparisonRow(number, pane.client, pane is focused) for number, pane in enumerate(panes, start=1)]
            self.comparison.show(rows, self.theory_tick_rate(now), self.link_latency_s)
        self.quote_header.show(self.reference.quote, self.simulated, now)
        if not self.card_columns:
            if figures:
                self.pane_detail.show(focused or (panes[0] if panes else None))
            self.published_row.update(
                published_row(published, self.published_row.size.width, now, self.row_label_width), layout=False
            )

    @property
    def row_label_width(self) -> int:
        """Cells before the timelines when panes are rows (the server column, with several)."""
        return ROW_LABEL_WIDTH + server_column_width(self.server_labels)

    def theory_tick_rate(self, now: float) -> float | None:
        """λ for theory: the simulator's own rate when the server says, else the one measured."""
        if self.simulated and self.server_tick_rate:
            return self.server_tick_rate
        return self.reference.tick_rate(now)

    # -- layout by size ----------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        # The app's own size is updated after this handler runs: lay out for the event's.
        self.arrange_panes(event.size)

    def arrange_panes(self, size: Size | None = None) -> None:
        """Cards side by side when they fit, else one row per pane and the focused pane's counters."""
        panes = self.panes
        width, height = size or self.size
        columns = card_columns(width, height, len(panes), self.theory_rows(panes))
        self.card_columns = columns
        box = self.pane_box
        box.set_class(columns == 0, "rows")
        if columns:
            box.styles.grid_size_columns = columns
        for pane in panes:
            pane.set_class(columns == 0, "row")
        # The focused pane's counters below the rows, when there is room for them; Enter shows
        # them at any size.
        self.pane_detail.display = (
            columns == 0 and height - rows_mode_lines(panes, self.theory_rows(panes)) >= MIN_DETAIL_HEIGHT
        )
        self.published_row.display = columns == 0
        self.repaint()

    # -- background work ---------------------------------------------------------------------------

    @work(exclusive=True, group="symbols", exit_on_error=False)
    async def load_symbols(self) -> None:
        """Learn the server's symbols for the next-symbol key (retrying until it answers)."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                try:
                    response = await http.get(self.server_url + "/api/symbols")
                    response.raise_for_status()
                    names = [tick["symbol"] for tick in response.json()]
                    # The server-bar worker reads /api/stats anyway; without it, read it once here.
                    stats = None if self.stats_interval else (await http.get(self.server_url + "/api/stats")).json()
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    await asyncio.sleep(2.0)
                    continue
                self.symbols = names or [self.symbol]
                if stats is not None:
                    self.learn_feed(stats)
                return

    def learn_feed(self, stats: object) -> None:
        """Whether the feed is simulated, and at what rate, from the first server's `/api/stats`.

        With several servers theory takes the rate measured: their simulators may all feed one broker."""
        if isinstance(stats, dict):
            simulated, rate = stats.get("simulated"), stats.get("tick_rate")
            self.simulated = simulated if isinstance(simulated, bool) else None
            one_server = len(self.server_urls) == 1
            self.server_tick_rate = float(rate) if one_server and isinstance(rate, int | float) and rate > 0 else None

    @work(exclusive=True, group="server-stats", exit_on_error=False)
    async def watch_server_stats(self) -> None:
        """Read every server's `/api/stats` for the server bar; its own client, so no pane counts
        these requests."""
        interval = self.stats_interval or 1.0

        async def read(http: httpx.AsyncClient, url: str) -> None:
            try:
                response = await http.get(url + "/api/stats")
                response.raise_for_status()
                self.post_message(ServerStatsFetched(response.json(), None, url))
            except httpx.HTTPError as exc:
                self.post_message(ServerStatsFetched(None, describe_http_error(exc), url))

        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                await asyncio.gather(*(read(http, url) for url in self.server_urls))
                await asyncio.sleep(interval)

    @on(ServerStatsFetched)
    def show_server_stats(self, message: ServerStatsFetched) -> None:
        self.server_bar.show(message.stats, message.error, message.server_url)
        if message.stats is not None and message.server_url == self.server_url:
            self.learn_feed(message.stats)

    # -- actions -----------------------------------------------------------------------------------

    def _target_pane(self) -> Pane | None:
        pane = self.focused_pane
        if pane is None and self.panes:
            pane = self.panes[0]
            pane.focus()
        return pane

    def action_cycle_mode(self, step: int) -> None:
        pane = self._target_pane()
        if pane is None:
            return
        available = list(MODES)
        index = available.index(pane.mode) if pane.mode in available else 0
        pane.replace_client(mode=available[(index + step) % len(available)])

    def action_set_mode(self, mode: str) -> None:
        pane = self._target_pane()
        if pane is None:
            return
        if mode not in MODES:
            self.notify(f"{mode} mode is not available in this version", severity="warning")
            return
        if mode != pane.mode:
            pane.replace_client(mode=mode)

    def action_poll_interval(self, step: int) -> None:
        interval = next_poll_interval(self.poll_interval, step)
        if interval == self.poll_interval:
            low, high = POLL_INTERVALS[0], POLL_INTERVALS[-1]
            self.notify(f"poll interval stays {interval:g} s (from {low:g} to {high:g} s)", timeout=2)
            return
        self.poll_interval = interval
        for pane in self.panes:
            if pane.mode == "poll":
                pane.reset_counters()  # figures from two intervals mixed would describe neither
                pane.client.poll_interval = interval
        self.notify(f"poll every {interval:g} s: poll figures start afresh", timeout=3)

    def action_next_symbol(self) -> None:
        symbols = self.symbols
        index = symbols.index(self.symbol) if self.symbol in symbols else -1
        self.switch_symbol(symbols[(index + 1) % len(symbols)])

    def switch_symbol(self, symbol: str) -> None:
        """Every pane to `symbol` (a new client each: their figures start afresh)."""
        self.symbol = symbol
        self.reference.switch(symbol)
        for pane in self.panes:
            pane.replace_client(symbol=symbol)
        self.repaint()

    def action_watchlist(self) -> None:
        if isinstance(self.screen, WatchlistScreen):
            return
        market = self.reference.market

        def picked(symbol: str | None) -> None:
            if symbol is not None and symbol != self.symbol:
                self.switch_symbol(symbol)

        def trouble() -> str | None:
            if market.state is ConnectionState.LIVE:
                return None
            return f"the feed is {market.state}" + (f" ({market.error})" if market.error else "")

        screen = WatchlistScreen(
            market.quote, market.recent_prices, lambda: market.symbols or self.symbols, self.symbol, trouble=trouble
        )
        self.push_screen(screen, picked)

    def action_alerts(self) -> None:
        if isinstance(self.screen, AlertsScreen):
            return
        market = self.reference.market
        last = self.reference.quote.last
        screen = AlertsScreen(
            self.alert_book,
            suggested_rule(self.symbol, last.price if last is not None else None),
            symbols=lambda: market.symbols or self.symbols,
            fired=self.fired.get,
            first_price=lambda symbol: market.quote(symbol).first_price,
        )
        self.push_screen(screen)

    # -- alerts ------------------------------------------------------------------------------------

    def watch_alerts(self, tick: Tick, at: float) -> None:
        """On the market feed's thread, for every tick of every symbol: post what fires."""
        market = self.reference.market
        first_price = market.quote(tick.symbol).first_price
        # The first tick of the app's session, or of a new history (a server restarted): the line
        # was crossed while nobody listened, and every pane gets that tick as it (re)connects.
        at_start = self._alert_epochs.get(tick.symbol) != tick.epoch
        self._alert_epochs[tick.symbol] = tick.epoch
        for crossing in self.alert_book.observe(tick, first_price, at):
            self.post_message(AlertCrossed(crossing, at_start))

    @on(AlertCrossed)
    def alert_fired(self, message: AlertCrossed) -> None:
        """The bell and the desktop at once (the push); the notice once every pane has seen it."""
        crossing = message.crossing
        self.fired[crossing.rule] = crossing
        self.bell()
        if self.desktop_notifications:
            notify_desktop(f"pushpull: {crossing.rule}", crossing.headline())
        if message.at_start:
            already = "already past the line when the app (or the server's history) started: no race to show"
            self.notify(already, title=crossing.headline(), timeout=ALERT_NOTICE_SECONDS, markup=False)
            return
        clients = {number: pane.client for number, pane in enumerate(self.panes, start=1)}
        self.report_alert(crossing, time.monotonic() + self.alert_report_wait, clients, {})

    def report_alert(
        self, crossing: Crossing, deadline: float, clients: dict[int, ModeClient], seen_at: dict[int, float]
    ) -> None:
        """Say which mode saw the crossing first and how much later each other did, once every pane
        on its symbol has seen it (or at `deadline`: a poll pane may not have asked yet).

        `clients` are the panes' clients when it fired, by pane number: a pane whose client was
        replaced since (a mode or symbol switch) drops out, since its new client's first tick says
        when it connected, not when it learnt. `seen_at` keeps each pane's time once found: read
        again later, a fast feed may have pushed the crossing out of the client's recent events."""
        symbol = crossing.tick.symbol
        current = {pane.client for pane in self.panes}
        clients = {n: c for n, c in clients.items() if c in current and c.symbol == symbol}
        for number, client in clients.items():
            if number not in seen_at and (at := first_seen_by(client, crossing.tick)) is not None:
                seen_at[number] = at
        if len(seen_at) < len(clients) and time.monotonic() < deadline:
            self.set_timer(ALERT_REPORT_STEP, lambda: self.report_alert(crossing, deadline, clients, seen_at))
            return
        modes = [client.mode for client in clients.values()]
        seen = {
            (client.mode if modes.count(client.mode) == 1 else f"{client.mode} (pane {number})"): seen_at.get(number)
            for number, client in clients.items()
        }
        if clients:
            report = seen_report(crossing, seen)
        else:
            report = f"no pane watches {crossing.tick.symbol}: the watchlist's feed saw it (l to watch it)"
        self.notify(report, title=crossing.headline(), timeout=ALERT_NOTICE_SECONDS, markup=False)

    def action_next_link(self) -> None:
        """Every pane onto the next network profile (their figures start afresh: two links' mixed
        would describe neither)."""
        profiles = list(PROFILES.values())
        if self.custom_link is not None:  # (one of the user's own, from --latency: kept in the round)
            profiles.append(self.custom_link)
        names = [profile.name for profile in profiles]
        index = names.index(self.link_profile.name) if self.link_profile.name in names else -1
        self.set_link(profiles[(index + 1) % len(profiles)])

    def set_link(self, profile: LinkProfile) -> None:
        old, self.link = self.link, None
        self.link_profile = profile
        self.server_bar.show_link(self.link_name)
        for pane in self.panes:
            pane.link_name = profile.name if profile.emulates else None
            pane.replace_client()
        self.call_after_refresh(self.arrange_panes)  # (theory rows come or go)
        if old is not None:  # after the old clients had time to close (a webhook deregisters through it)
            close_later(old)
        self.notify(f"link: {profile.describe()}; figures start afresh", timeout=3)

    def action_reset_counters(self) -> None:
        for pane in self.panes:
            pane.reset_counters()
        self.repaint()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        for pane in self.panes:
            pane.set_paused(self.paused)
        self.notify("paused" if self.paused else "resumed", timeout=2)

    def action_add_pane(self) -> None:
        panes = self.panes
        if len(panes) >= MAX_PANES:
            self.notify(f"at most {MAX_PANES} panes", severity="warning")
            return
        shown = {pane.mode for pane in panes}
        mode = next((m for m in MODES if m not in shown), "poll")
        pane = self._new_pane(mode, self.next_server_url())
        self.pane_box.mount(pane)
        pane.set_paused(self.paused)
        pane.focus()
        self.call_after_refresh(self.arrange_panes)

    def action_remove_pane(self) -> None:
        pane = self.focused_pane
        if pane is None or len(self.panes) <= 1:
            self.notify("the last pane stays", severity="warning")
            return
        pane.stop_client()
        self.screen.focus_next(Pane)
        pane.remove()
        self.call_after_refresh(self.arrange_panes)

    def on_unmount(self) -> None:
        self.reference.stop()
        if self.link is not None:  # after the clients had time to close through it
            close_later(self.link)

    def action_details(self) -> None:
        pane = self._target_pane()
        if pane is not None and not isinstance(self.screen, PaneDetailScreen):
            self.push_screen(PaneDetailScreen(pane))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            rate = self.theory_tick_rate(self.wall_clock())
            latency = self.link_latency_s
            theory = poll_theory_over(rate, self.poll_interval, latency) if rate else None
            expectation = theory.sentence(rate, self.poll_interval) if theory and rate else None
            if expectation and latency > 0:
                expectation += f", over the {self.link_profile.name} link ({1000 * latency:g} ms each way)"
            self.push_screen(
                HelpScreen(self.KEY_HELP, expectation[:1].upper() + expectation[1:] if expectation else None)
            )

    def action_save_settings(self) -> None:
        """Write what a restart should bring back: the symbol, the panes' modes, the poll interval,
        the theme and, when attached to servers of one's own choosing, their URLs."""
        path = self.config_path
        if path is None:
            self.notify("no config file to save to", severity="warning")
            return
        settings: dict[str, object] = {
            "symbol": self.symbol,
            "alerts": [str(rule) for rule in self.alert_book.rules],
            "modes": [pane.mode for pane in self.panes],
            "poll_interval": self.poll_interval,
            "theme": self.theme,
        }
        if not self.embedded:
            settings["server"] = list(self.server_urls)
        if self.link_profile.name in PROFILES:  # (a link of one's own is the flags' to give)
            settings["network"] = self.link_profile.name
        try:
            save_config(path, settings)
        except OSError as exc:
            self.notify(f"could not save the settings to {path}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"settings saved to {path}")

    def action_export(self) -> None:
        """Write the comparison as it stands to CSV and JSON in `export_dir`, and say where."""
        data = comparison(
            [(pane.client, pane.server_url) for pane in self.panes],
            symbol=self.symbol,
            tick_rate=self.theory_tick_rate(self.wall_clock()),
            poll_interval=self.poll_interval,
            network=self.link_name,
            latency_s=self.link_latency_s,
        )
        try:
            json_path, csv_path = write_comparison(self.export_dir, data)
        except OSError as exc:
            self.notify(f"could not export to {self.export_dir}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"comparison exported to {csv_path} and {json_path.name}")

    def action_advisor(self) -> None:
        if not isinstance(self.screen, AdvisorScreen):
            self.push_screen(AdvisorScreen(self.advisor_data))

    def advisor_data(self) -> AdvisorData:
        """What the advisor shows now: every pane's figures, theory at the rate theory uses."""
        return advisor_data(
            [pane.client for pane in self.panes],
            tick_rate=self.theory_tick_rate(self.wall_clock()),
            poll_interval=self.poll_interval,
            latency_s=self.link_latency_s,
        )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Next mode", "Cycle the focused pane's mode", lambda: self.action_cycle_mode(1))
        yield SystemCommand("Previous mode", "Cycle the focused pane's mode back", lambda: self.action_cycle_mode(-1))
        for mode in MODE_KEYS:
            yield SystemCommand(
                f"Mode: {mode}", f"Set the focused pane to {mode}", lambda mode=mode: self.action_set_mode(mode)
            )
        yield SystemCommand("Poll slower", "Raise the poll interval", lambda: self.action_poll_interval(1))
        yield SystemCommand("Poll faster", "Lower the poll interval", lambda: self.action_poll_interval(-1))
        yield SystemCommand("Next symbol", "Every pane to the next symbol", self.action_next_symbol)
        yield SystemCommand(
            "Watchlist", "Every symbol's price and trend; pick one for the panes", self.action_watchlist
        )
        yield SystemCommand("Reset counters", "Zero every pane's counters", self.action_reset_counters)
        yield SystemCommand("Pause / resume", "Stop or restart receiving", self.action_toggle_pause)
        yield SystemCommand("Next network", "Every pane over the next network profile", self.action_next_link)
        yield SystemCommand("Price alerts", "Add, list and remove price alerts", self.action_alerts)
        yield SystemCommand("Save settings", "Write the layout to the config file", self.action_save_settings)
        yield SystemCommand("Export comparison", "Every pane's figures and theory to CSV and JSON", self.action_export)
        yield SystemCommand("Interval advisor", "How poll costs move with the interval", self.action_advisor)
        yield SystemCommand("Add pane", "Another pane, in a mode not shown yet", self.action_add_pane)
        yield SystemCommand("Remove pane", "Remove the focused pane", self.action_remove_pane)
        yield SystemCommand("Details", "Every counter of the focused pane", self.action_details)
        yield SystemCommand("Help", "Keys and what each mode teaches", self.action_help)


KEY_PRIORITY = {
    "Help": 0,
    "Quit": 0,
    "Focus": 1,
    "Mode": 2,
    "Pause": 3,
    "Details": 4,
    "Interval": 5,
    "Watchlist": 5,
    "Symbol": 6,
    "Alerts": 6,
    "Advisor": 7,
    "Network": 7,
    "Pane": 7,
}
"""Which key hints the bar keeps longest when the terminal is narrow (others after these)."""
MIN_CARD_WIDTH = 28
"""Columns a pane card needs for its counters."""
MIN_CARD_HEIGHT = 29
"""Lines a pane card needs: border 2, title and state 2, how it works 1, price 2, timeline 4,
every counter 17 (a webhook's one more)."""


def close_later(link: Link) -> None:
    """Close `link` once its clients had `LINK_CLOSE_AFTER` seconds to close through it, on a
    daemon timer: it never holds the process at exit (`main` closes the last link itself)."""
    timer = threading.Timer(LINK_CLOSE_AFTER, link.close)
    timer.daemon = True
    timer.start()


def published_row(published: Sequence[Published], width: int, now: float, label_width: int = ROW_LABEL_WIDTH) -> Text:
    """The row above the pane rows: every published tick, on the same strip as theirs."""
    strip = max(0, width - label_width)
    window = window_for(strip)
    label = Text(f"published in the last {window:g} s".rjust(label_width - 1) + " ", "grey62")
    return label + published_strip(published, now=now, window=window, width=strip)


MIN_DETAIL_HEIGHT = 7
"""Lines the focused pane's counters need below the rows: a title, its status and five rows."""


def rows_mode_lines(panes: list[Pane], theory_rows: int) -> int:
    """Lines everything but the counters panel takes when panes are rows."""
    return 2 + 1 + len(panes) + (1 + 1 + len(panes) + theory_rows) + 1


def card_columns(width: int, height: int, panes: int, theory_rows: int = 1) -> int:
    """How many pane cards side by side fit, preferring one row of all; 0 when none fit."""
    if panes == 0:
        return 0
    comparison = 1 + 1 + panes + theory_rows  # margin, header, a row per pane, the theory rows
    other_lines = 2 + comparison + 1  # the server bar and quote, the comparison, the key bar
    for columns in range(panes, 0, -1):
        rows = -(-panes // columns)
        if width // columns >= MIN_CARD_WIDTH and (height - other_lines) // rows >= MIN_CARD_HEIGHT:
            return columns
    return 0


def describe_http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "unreachable"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__
