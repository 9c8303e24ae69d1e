"""PushPullApp: side-by-side panes, one mode each, on the same symbol; keys to switch and compare."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import ClassVar

import httpx
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.defaults import DEFAULT_MODES, DEFAULT_POLL_INTERVAL, DEFAULT_SYMBOL, MAX_PANES
from tui.messages import ServerStatsFetched
from tui.modes import MODES, Backoff, ModeClient, ServerClock, make_client
from tui.widgets import Comparison, HelpScreen, Pane, ServerBar

__all__ = ["POLL_INTERVALS", "PushPullApp", "next_poll_interval"]

POLL_INTERVALS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Steps for the poll interval keys, within `POLL_INTERVAL_RANGE`."""
MODE_KEYS = ("poll", "longpoll", "sse", "ws", "webhook")
"""What keys 1..5 select, in SPEC's order."""


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
        Binding("r", "reset_counters", "Reset"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("a", "add_pane", "Add pane", group=PANE_GROUP),
        Binding("x", "remove_pane", "Remove pane", group=PANE_GROUP),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Tab / Shift+Tab", "focus the next / previous pane"),
        ("m / M", "cycle the focused pane's mode forward / back"),
        ("1 2 3 4 5", "set the focused pane to poll, longpoll, sse, ws, webhook"),
        ("+ / -", "poll less / more often (every poll pane)"),
        ("s", "next symbol (every pane)"),
        ("r", "reset every pane's counters"),
        ("p", "pause / resume receiving (push modes resume from their cursor)"),
        ("a / x", "add a pane / remove the focused pane"),
        ("? / F1", "this help"),
        ("Ctrl+P", "command palette: every action above by name"),
        ("q", "quit"),
    ]

    def __init__(
        self,
        server_url: str,
        *,
        symbol: str = DEFAULT_SYMBOL,
        modes: Sequence[str] = DEFAULT_MODES,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        embedded: bool = False,
        refresh_interval: float = 0.2,
        stats_interval: float | None = 1.0,
        clock: ServerClock | None = None,
        backoff: Backoff | None = None,
        seed: int | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__()
        self.server_url = server_url.rstrip("/")
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
        self.symbols: list[str] = [symbol]
        self.paused = False
        self._pane_ids = 0
        # Held, not queried: queries look at the active screen, and help may be on top. It shows
        # `server_name` instead of the URL if given: a picture that must not show the port (tests).
        self.server_bar = ServerBar(server_name or self.server_url, symbol=symbol, embedded=embedded, id="server-bar")
        self.pane_box = Horizontal(id="panes")
        self.comparison = Comparison(id="comparison")

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.server_bar
        with self.pane_box:
            for mode in self.initial_modes:
                yield self._new_pane(mode)
        yield self.comparison
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.refresh_interval, self.repaint)
        self.load_symbols()
        if self.stats_interval is not None:
            self.watch_server_stats()
        panes = self.panes
        if panes:
            panes[0].focus()
        self.repaint()

    def _new_pane(self, mode: str) -> Pane:
        self._pane_ids += 1
        return Pane(mode, self.symbol, self.make_client, id=f"pane-{self._pane_ids}")

    def make_client(self, mode: str, symbol: str) -> ModeClient:
        return make_client(
            mode,
            self.server_url,
            symbol,
            poll_interval=self.poll_interval,
            clock=self.clock,
            backoff=self.backoff,
            seed=self.seed,
        )

    @property
    def panes(self) -> list[Pane]:
        return list(self.pane_box.query(Pane))

    @property
    def focused_pane(self) -> Pane | None:
        focused = self.focused
        return focused if isinstance(focused, Pane) else None

    def repaint(self) -> None:
        panes = self.panes
        for pane in panes:
            pane.repaint()
        self.comparison.show(pane.client for pane in panes)

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
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    await asyncio.sleep(2.0)
                    continue
                self.symbols = names or [self.symbol]
                return

    @work(exclusive=True, group="server-stats", exit_on_error=False)
    async def watch_server_stats(self) -> None:
        """Read `/api/stats` for the server bar; its own client, so no pane counts these requests."""
        interval = self.stats_interval or 1.0
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                try:
                    response = await http.get(self.server_url + "/api/stats")
                    response.raise_for_status()
                    self.post_message(ServerStatsFetched(response.json(), None))
                except httpx.HTTPError as exc:
                    self.post_message(ServerStatsFetched(None, describe_http_error(exc)))
                await asyncio.sleep(interval)

    @on(ServerStatsFetched)
    def show_server_stats(self, message: ServerStatsFetched) -> None:
        self.server_bar.show(message.stats, message.error)

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
        self.poll_interval = next_poll_interval(self.poll_interval, step)
        for pane in self.panes:
            if pane.mode == "poll":
                pane.client.poll_interval = self.poll_interval
        self.notify(f"poll every {self.poll_interval:g} s", timeout=2)

    def action_next_symbol(self) -> None:
        symbols = self.symbols
        index = symbols.index(self.symbol) if self.symbol in symbols else -1
        self.symbol = symbols[(index + 1) % len(symbols)]
        self.server_bar.symbol = self.symbol
        self.server_bar.show(self.server_bar.stats, self.server_bar.error)
        for pane in self.panes:
            pane.replace_client(symbol=self.symbol)

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
        pane = self._new_pane(mode)
        self.pane_box.mount(pane)
        pane.set_paused(self.paused)
        pane.focus()

    def action_remove_pane(self) -> None:
        pane = self.focused_pane
        if pane is None or len(self.panes) <= 1:
            self.notify("the last pane stays", severity="warning")
            return
        pane.stop_client()
        self.screen.focus_next(Pane)
        pane.remove()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.KEY_HELP))

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
        yield SystemCommand("Reset counters", "Zero every pane's counters", self.action_reset_counters)
        yield SystemCommand("Pause / resume", "Stop or restart receiving", self.action_toggle_pause)
        yield SystemCommand("Add pane", "Another pane, in a mode not shown yet", self.action_add_pane)
        yield SystemCommand("Remove pane", "Remove the focused pane", self.action_remove_pane)
        yield SystemCommand("Help", "Keys and what each mode teaches", self.action_help)


def describe_http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "unreachable"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__
