"""The app as a user drives it: keys, panes receiving from a real server, an unreachable server, a restart."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import httpx
import pytest
from textual.pilot import Pilot

from tests.helpers import (
    RunningServer,
    ServerFactory,
    free_port,
    pane_text,
    prices,
    publish,
    start_server,
    until,
    until_sync,
)
from tui.app import PushPullApp
from tui.modes import Backoff, ConnectionState
from tui.widgets import HelpScreen, Pane

WAIT = 30.0
SIZE = (160, 45)
FAST = Backoff(base=0.05, cap=0.3, unreachable_after=3)


@asynccontextmanager
async def running_app(app: PushPullApp) -> AsyncIterator[Pilot[None]]:
    async with asyncio.timeout(WAIT), app.run_test(size=SIZE, notifications=True) as pilot:
        yield pilot


def shows(pane: Pane, text: str) -> bool:
    return text in pane_text(pane)


@pytest.fixture(scope="module")
def fed_server() -> Iterator[RunningServer]:
    """A server with a lively simulated feed, so every mode has something to show quickly (the
    module's stories only read from it, so they share it)."""
    with start_server("--tick-rate", "20", "--seed", "3", "--symbols", "RELIANCE,TCS", "--heartbeat", "1") as server:
        yield server


async def test_every_mode_pane_receives_ticks_and_its_counters_move(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url, poll_interval=0.2, stats_interval=0.5)
    async with running_app(app) as pilot:
        panes = app.panes
        assert [p.mode for p in panes] == ["poll", "longpoll", "sse", "ws"]
        # Delays count from a second after start-up (the app's own first renders are not a delay).
        await until(
            lambda: all(p.client.stats.updates >= 3 and p.client.stats.last_delay_ms for p in panes), pilot=pilot
        )
        for pane in panes:
            assert pane.client.state is ConnectionState.LIVE
        await pilot.press("p")  # pause, so the counters hold still while we read them
        # Pausing asks each client to stop without waiting for it: a tick may still land until it has.
        await until(lambda: all(p.client.state is ConnectionState.STOPPED for p in panes), pilot=pilot)
        app.repaint()
        for pane in panes:
            stats = pane.client.stats
            await until(partial(shows, pane, "paused"), pilot=pilot)  # repainted since
            shown = pane_text(pane)
            assert f"updates {stats.updates}" in shown
            assert f"requests {stats.requests}" in shown
        # the requests a pane counts are its own: poll asks on its beat, a stream connects once
        assert panes[0].client.stats.requests >= 3
        assert panes[2].client.stats.requests == 1
        assert panes[3].client.stats.requests == 1
        bar = app.server_bar
        await until(lambda: bar.stats is not None, pilot=pilot)
        assert "broker memory" in str(bar.render())


async def test_tab_and_shift_tab_move_focus_between_panes(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url)
    async with running_app(app) as pilot:
        panes = app.panes
        assert app.focused is panes[0]
        await pilot.press("tab")
        assert app.focused is panes[1]
        await pilot.press("tab", "tab", "tab")
        assert app.focused is panes[0]
        await pilot.press("shift+tab")
        assert app.focused is panes[3]


async def test_m_and_shift_m_cycle_the_focused_panes_mode(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url)
    async with running_app(app) as pilot:
        await pilot.press("tab")  # the long-poll pane
        second = app.panes[1]
        await pilot.press("m")
        assert second.mode == "sse"
        await pilot.press("m", "m")
        assert second.mode == "webhook"
        await pilot.press("m")
        assert second.mode == "poll"  # wrapped round
        await pilot.press("M")
        assert second.mode == "webhook"
        await pilot.press("M")
        assert [p.mode for p in app.panes] == ["poll", "ws", "sse", "ws"]
        await until(lambda: second.client.stats.updates >= 1, pilot=pilot)  # the new client runs


async def test_number_keys_set_the_focused_panes_mode(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url)
    async with running_app(app) as pilot:
        first = app.panes[0]
        for key, mode in (("4", "ws"), ("3", "sse"), ("2", "longpoll"), ("1", "poll")):
            await pilot.press(key)
            assert first.mode == mode
        await pilot.press("5")
        assert first.mode == "webhook"
        await until(lambda: first.client.state is ConnectionState.LIVE, pilot=pilot)  # registered its receiver


async def test_q_quits(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url)
    async with running_app(app) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0
    assert not app.is_running


async def test_other_keys_interval_symbol_reset_pause_add_remove_help(fed_server: RunningServer) -> None:
    app = PushPullApp(fed_server.url, poll_interval=1.0)
    async with running_app(app) as pilot:
        panes = app.panes
        await until(lambda: all(p.client.stats.updates >= 2 for p in panes), pilot=pilot)

        await pilot.press("minus")
        assert app.poll_interval == 0.5 and panes[0].client.poll_interval == 0.5
        await pilot.press("plus", "plus")
        assert app.poll_interval == 2.0
        await until(lambda: "asks every 2 s" in pane_text(panes[0]), pilot=pilot)

        await until(lambda: app.symbols == ["RELIANCE", "TCS"], pilot=pilot)
        await pilot.press("s")
        assert all(p.symbol == "TCS" and p.client.symbol == "TCS" for p in app.panes)
        await until(lambda: all(p.client.last_tick is not None for p in app.panes), pilot=pilot)
        assert all(p.client.last_tick and p.client.last_tick.symbol == "TCS" for p in app.panes)

        sse = app.panes[2].client.stats
        await until(lambda: sse.updates >= 10, pilot=pilot)
        before = sse.updates
        await pilot.press("r")
        await until(lambda: sse.requests == 0, pilot=pilot)  # its one connection was counted before the reset
        assert sse.updates < before
        assert sse.open_connections == 1  # a level, not a count: it stays

        await pilot.press("p")
        assert all(p.paused for p in app.panes)
        await until(lambda: "paused" in pane_text(app.panes[2]), pilot=pilot)
        await pilot.press("p")
        assert not any(p.paused for p in app.panes)

        await pilot.press("a")
        assert len(app.panes) == 5 and app.focused is app.panes[4]
        await pilot.press("x")
        assert len(app.panes) == 4

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_an_unreachable_server_shows_in_the_panes_and_the_app_stays_usable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens: connecting is refused
    app = PushPullApp(url, backoff=FAST, stats_interval=0.2, seed=1)
    async with running_app(app) as pilot:
        await until(lambda: all(p.client.state is ConnectionState.UNREACHABLE for p in app.panes), pilot=pilot)
        for pane in app.panes:
            await until(partial(shows, pane, "unreachable"), pilot=pilot)
            assert "connection refused" in pane_text(pane)
        await until(lambda: "unreachable" in str(app.server_bar.render()), pilot=pilot)
        await pilot.press("m")  # still usable
        assert app.panes[0].mode == "longpoll"


async def test_a_server_restart_shows_reconnecting_then_live_with_the_gap_shown(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("--no-feed", "--heartbeat", "0.5")
    port = int(server.url.rsplit(":", 1)[1])
    app = PushPullApp(server.url, poll_interval=0.2, backoff=Backoff(base=0.2, cap=0.5, unreachable_after=50))
    async with running_app(app) as pilot:
        panes = app.panes
        async with httpx.AsyncClient() as http:
            await publish(http, server, "RELIANCE", prices(3))
        await until(lambda: all(p.client.last_tick and p.client.last_tick.seq == 4 for p in panes), pilot=pilot)

        server.stop()
        await until(lambda: all(p.client.state is ConnectionState.RECONNECTING for p in panes[1:]), pilot=pilot)
        await until(lambda: all("reconnecting" in pane_text(p) for p in panes[1:]), pilot=pilot)

        restarted = start_server("--no-feed", "--heartbeat", "0.5", port=port)
        try:
            await until(lambda: all(p.client.state is ConnectionState.LIVE for p in panes), pilot=pilot)
            await until(lambda: all(p.client.stats.gaps >= 1 for p in panes), pilot=pilot)
            for pane in panes:
                assert pane.client.last_tick is not None and pane.client.last_tick.seq == 1  # the new history
                await until(partial(shows, pane, "● live"), pilot=pilot)
            for pane in panes[1:]:
                assert pane.client.stats.reconnects >= 1
        finally:
            restarted.stop()


# -- several servers -------------------------------------------------------------------------------


async def test_panes_spread_over_two_servers_and_each_names_the_one_it_talks_to(
    server_factory: ServerFactory,
) -> None:
    """`--server URL1,URL2`: pane i talks to server i mod 2 and says which (as rows at 80x24 and as
    cards at 160x45); the server bar names the process answering at each. These two share no broker,
    so a price published on one reaches only its panes, and the bar says they are separate feeds."""
    first, second = server_factory("--no-feed"), server_factory("--no-feed")
    ports = [f":{server.url.rsplit(':', 1)[1]}" for server in (first, second)]
    async with httpx.AsyncClient() as http:
        instances = [(await http.get(server.url + "/api/stats")).json()["instance"] for server in (first, second)]
    app = PushPullApp([first.url, second.url], poll_interval=0.2, stats_interval=0.2)
    async with asyncio.timeout(WAIT), app.run_test(size=(80, 24)) as pilot:
        panes = app.panes
        assert [p.client.server_url for p in panes] == [first.url, second.url, first.url, second.url]
        async with httpx.AsyncClient() as http:
            await publish(http, first, "RELIANCE", [1111.05])
            await publish(http, second, "RELIANCE", [2222.10])
        expected = [1111.05, 2222.10, 1111.05, 2222.10]
        await until(
            lambda: [p.client.last_tick.price if p.client.last_tick else None for p in panes] == expected, pilot=pilot
        )

        def bar() -> str:
            return str(app.server_bar.render())

        await until(lambda: all(name in bar() for name in (*ports, *instances)), pilot=pilot)
        assert "separate feeds" in bar()
        app.repaint()
        for pane, port in zip(panes, ports * 2, strict=True):
            row = " ".join(str(pane.parts["#title"].render()).split())
            assert f"{pane.number} {pane.mode} {port} ● live" in row, row  # as a row: mode, server, state
        assert ports[0] in str(app.pane_detail.border_title)  # the focused pane's counters name its server

        await pilot.resize_terminal(160, 45)
        await until(lambda: app.card_columns == 4, pilot=pilot)
        app.repaint()
        for pane, port in zip(panes, ports * 2, strict=True):
            assert pane_text(pane).startswith(f"{pane.number} {pane.mode} {port} · "), pane_text(pane)

        await pilot.press("tab", "x", "a")  # the second server's pane goes; the new one takes its place
        await until(lambda: len(app.panes) == 4, pilot=pilot)
        assert [p.client.server_url for p in app.panes] == [first.url, first.url, second.url, second.url]


# -- the command itself ----------------------------------------------------------------------------


def run_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ["--server", "not a url"],
        ["--server", "ftp://x"],
        ["--server", "http://h:99999"],
        ["--modes", "poll,carrier"],
        ["--poll-interval", "0"],
        ["--bogus"],
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args: list[str]) -> None:
    done = run_tui(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pushpull-tui: error:"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_symbol_the_server_does_not_publish_is_one_line_and_exit_2(fed_server: RunningServer) -> None:
    """Bundled or given server: an unknown --symbol is refused up front, naming the ones there are."""
    for args in (["--symbol", "nope"], ["--server", fed_server.url, "--symbol", "NOPE"]):
        done = run_tui(*args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "does not publish NOPE; it publishes RELIANCE, TCS" in lines[0], done.stderr


def test_help_and_version() -> None:
    assert "--poll-interval" in run_tui("--help").stdout
    assert run_tui("--version").stdout.strip() == "pushpull-tui 0.1.0"


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (our end, the app's end)."""
    ours, theirs = pty.openpty()
    yield ours, theirs
    for fd in (ours, theirs):
        with suppress(OSError):
            os.close(fd)


def read_until(fd: int, needle: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_q_quits_the_real_app_and_leaves_no_server_behind(terminal: tuple[int, int]) -> None:
    """`pushpull-tui` in a terminal: its embedded server starts, `q` ends both, no traceback."""
    ours, theirs = terminal
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    app = subprocess.Popen(
        [sys.executable, "-m", "tui", "--seed", "5", "--tick-rate", "5"],
        stdin=theirs,
        stdout=theirs,
        stderr=theirs,
        env=env,
        start_new_session=True,
    )  # Textual draws on stderr, so that goes to the terminal too
    try:
        screen = read_until(ours, b"live", 30)
        assert b"live" in screen, screen[-500:]
        children = subprocess.run(["pgrep", "-P", str(app.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the embedded server runs as the app's child"
        os.write(ours, b"q")
        deadline = time.monotonic() + 15
        while app.poll() is None and time.monotonic() < deadline:
            screen += read_until(ours, b"\x00never", 0.2)  # keep draining: a full terminal would block it
        assert app.poll() == 0, "q did not end the app"
        screen += read_until(ours, b"Traceback", 0.5)
        for pid in map(int, children):
            until_sync(partial(has_ended, pid), timeout=10, what=f"server {pid} outlived the app")
        assert b"Traceback" not in screen
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGTERM)
            app.wait(10)


def has_ended(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or is_zombie(pid)


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False
