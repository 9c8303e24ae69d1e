"""What the test modules share: real servers, waiting on a condition, publishing ticks.

Servers are real `pushpull-server` processes on 127.0.0.1 and a free port. Their output (stdout
and stderr merged) is always read on a thread, as `tui.embedded.EmbeddedServer` does, so a chatty
server can never block on a full pipe, and every line is kept for the tests that check it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from tui.embedded import server_command
from tui.modes import ModeClient
from tui.widgets import Pane

__all__ = [
    "TOKEN",
    "WAIT",
    "RunningServer",
    "ServerFactory",
    "free_port",
    "pane_text",
    "prices",
    "publish",
    "publish_sync",
    "start_server",
    "until",
    "until_sync",
]

TOKEN = "test-token"
WAIT = 20.0
"""Seconds any one wait may take before it fails (a server to start, a condition to hold)."""
LISTENING = re.compile(r"listening on (http://\S+)")

Tick = dict[str, Any]


# -- servers -----------------------------------------------------------------------------------------


class RunningServer:
    """A server process a test started: its output always drained and kept, stopped by its PID.

    `with` it, or call `stop()`. `output` is everything it wrote so far, stdout and stderr merged.
    """

    def __init__(self, argv: Sequence[str], *, token: str | None, env: Mapping[str, str] | None = None) -> None:
        self.token = token
        self.lines: list[str] = []
        """Every line the process wrote, in order (appended by the reader thread)."""
        self._url: str | None = None
        self._listening = threading.Event()
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        )
        self._reader = threading.Thread(target=self._read, name=f"server-{self.process.pid}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for raw in self.process.stdout:
                line = raw.rstrip("\n")
                self.lines.append(line)
                if self._url is None and (match := LISTENING.search(line)):
                    self._url = match.group(1)
                    self._listening.set()
        finally:
            self._listening.set()  # it ended without listening: nobody need wait any longer

    def wait_until_ready(self, timeout: float = WAIT) -> RunningServer:
        """Wait for its "listening on URL" line, then until it answers /healthz; stop it and fail if not."""
        self._listening.wait(timeout)
        deadline = time.monotonic() + timeout
        while self._url is not None and self.process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(self._url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        _, output = self.stop()
        raise RuntimeError(f"the server did not start: {output or 'no output'}")

    @property
    def url(self) -> str:
        assert self._url is not None, "the server has not said where it listens"
        return self._url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def output(self) -> str:
        """What it wrote so far (stdout and stderr merged)."""
        return "\n".join(self.lines)

    def wait(self, timeout: float = WAIT) -> tuple[int, str]:
        """Wait for it to exit (a test signalled it); returns (exit status, all its output)."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code, self.output

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        """Signal it (by PID) unless it has ended, wait, SIGKILL if it will not go; (exit status, output).

        The wait is generous: a server's own shutdown is bounded at about 8 s (3 s for uvicorn's
        connections, 5 s for its background tasks), and a loaded machine stretches that; once, on
        a machine running two suites, a Redis-broker server needed more than 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.wait(5.0)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ServerFactory = Callable[..., RunningServer]
"""The `server_factory` fixture: start a server with these flags, stopped when the test ends."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any PUSHPULL_* variable (a developer's own must not leak in), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPULL_")}
    env.update(extra or {})
    return env


PORTABLE_PATH_ENV = {"PUSHPULL_NO_FAST_PATH": "1"}
SERVER_ENV: dict[str, str] = {}
"""Set for every server `start_server` starts; the `serving_path` fixture puts `PORTABLE_PATH_ENV` here
while a module that runs on every path (`BOTH_PATHS`) takes its portable turn."""
SERVER_BROKER: Callable[[], str] | None = None
"""While such a module takes its Redis turn: gives each server `start_server` starts a Redis URL of its
own (a fresh database), unless the test names a broker itself."""


def start_server(
    *args: str,
    token: str | None = TOKEN,
    env: Mapping[str, str] | None = None,
    port: int = 0,
    launcher: Sequence[str] | None = None,
) -> RunningServer:
    """Start `pushpull-server --host 127.0.0.1 --port PORT ARGS` (a free port by default); return it once it
    answers. By default this installation's server (`server_command()`: nothing in the working directory
    or PYTHONPATH can stand in for it); `launcher` runs another way in (`python -m server`, the script)."""
    flags = ["--host", "127.0.0.1", "--port", str(port), *args]
    if token is not None:
        flags += ["--publish-token", token]
    argv = [*launcher, *flags] if launcher is not None else server_command(flags)
    server_env = dict(SERVER_ENV)
    if SERVER_BROKER is not None and "--broker" not in args and "PUSHPULL_BROKER" not in (env or {}):
        server_env["PUSHPULL_BROKER"] = SERVER_BROKER()
    return RunningServer(argv, token=token, env=clean_env({**server_env, **(env or {})})).wait_until_ready()


def free_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- waiting -----------------------------------------------------------------------------------------

Condition = Callable[[], bool] | Callable[[], Awaitable[bool]]


def _where(condition: Callable[..., object]) -> str:
    """Where a condition is written (file:line), for a failure message."""
    code = getattr(condition, "__code__", None)
    return f"the condition at {os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else repr(condition)


async def until(
    condition: Condition,
    *,
    pilot: Pilot[Any] | None = None,
    timeout: float = WAIT,
    step: float = 0.01,
    what: str | None = None,
) -> None:
    """Check `condition` (a function, or a coroutine function) until it holds; fail after `timeout` s,
    saying `what` was awaited (by default, where the condition is written).

    With a `pilot` the app runs between checks (`pilot.pause`); otherwise the event loop does.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:g} s: {what or _where(condition)}")
        if pilot is not None:
            await pilot.pause(step)
        else:
            await asyncio.sleep(step)


def until_sync(
    condition: Callable[[], bool], *, timeout: float = WAIT, step: float = 0.02, what: str | None = None
) -> None:
    """`until` for code without an event loop: sleeps between checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:g} s: {what or _where(condition)}")
        time.sleep(step)


# -- ticks -------------------------------------------------------------------------------------------


def prices(count: int, start: float = 1000.0) -> list[float]:
    """Distinct prices on the 0.05 grid, so every tick is recognisable."""
    return [round(start + 0.05 * i, 2) for i in range(count)]


async def publish(client: httpx.AsyncClient, server: RunningServer, symbol: str, prices: list[float]) -> list[Tick]:
    """Publish prices in order (batches of 500), returning the stored ticks."""
    stored: list[Tick] = []
    for start in range(0, len(prices), 500):
        batch = [{"symbol": symbol, "price": p} for p in prices[start : start + 500]]
        response = await client.post(server.url + "/api/publish", json={"ticks": batch}, headers=server.auth)
        assert response.status_code == 201, response.text
        stored.extend(response.json()["ticks"])
    return stored


def publish_sync(server: RunningServer, symbol: str, prices: list[float]) -> list[Tick]:
    """`publish` for code without an event loop (one batch)."""
    body = {"ticks": [{"symbol": symbol, "price": p} for p in prices]}
    response = httpx.post(server.url + "/api/publish", json=body, headers=server.auth, timeout=WAIT)
    assert response.status_code == 201, response.text
    stored: list[Tick] = response.json()["ticks"]
    return stored


# -- the app -----------------------------------------------------------------------------------------


def pane_text(pane: Pane) -> str:
    """What the pane shows, as plain text with single spaces (title, explanation and counters)."""
    file = io.StringIO()
    console = Console(file=file, width=60, color_system=None)
    for part in ("#title", "#explain", "#counters"):
        console.print(pane.query_one(part, Static).content)
    return "\n".join(" ".join(line.split()) for line in file.getvalue().splitlines())


# -- clients and raw peers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_client(client: ModeClient, stop_within: float = 10.0) -> AsyncIterator[asyncio.Task[None]]:
    """Run a mode client as a task, as a pane's worker does; at the end `stop()` must end `run()`
    within `stop_within` seconds."""
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.stop()
        await asyncio.wait_for(task, stop_within)


@contextlib.asynccontextmanager
async def raw_peer(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], path: str = ""
) -> AsyncIterator[str]:
    """A raw TCP peer on loopback (a hostile server or webhook receiver) that serves each connection
    with `handle`, a client's leaving not counted as an error; yields its URL (`path` appended)."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):  # (cancelled: the loop ends)
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    finally:
        server.close()
