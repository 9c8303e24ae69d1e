"""Real servers for the tests: `pushpull-server` processes on 127.0.0.1 and a free port each."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

TOKEN = "test-token"
LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 20.0


@dataclass
class RunningServer:
    """A `pushpull-server` child process this test started (and will stop, by PID)."""

    url: str
    process: subprocess.Popen[str]
    token: str | None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        """Signal the server and wait; returns (exit status, what it wrote to stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        assert self.process.stderr is not None
        return self.process.returncode, self.process.stderr.read()


def start_server(
    *args: str, token: str | None = TOKEN, env: dict[str, str] | None = None, port: int = 0
) -> RunningServer:
    """Start `python -m server --port PORT ...` (a free port by default) and wait until it answers /healthz."""
    argv = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port), *args]
    if token is not None:
        argv += ["--publish-token", token]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPULL_")}
    child_env.update(env or {})
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = LISTENING.search(line)
    if match is None:
        process.kill()
        _, err = process.communicate(timeout=5)
        raise RuntimeError(f"server did not start: {line!r} {err!r}")
    return wait_until_healthy(RunningServer(url=match.group(1), process=process, token=token))


def wait_until_healthy(server: RunningServer) -> RunningServer:
    """Wait until the server answers /healthz; stop it (by PID) and fail if it never does."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            server.stop()
            raise RuntimeError("server never became healthy")
        time.sleep(0.05)


ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    """Start servers with any flags; every one is stopped (by its PID) when the test ends."""
    started: list[RunningServer] = []

    def factory(*args: str, token: str | None = TOKEN, env: dict[str, str] | None = None) -> RunningServer:
        server = start_server(*args, token=token, env=env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    """A quiet server: no simulator, publishing by token, short heartbeats."""
    return server_factory("--no-feed", "--heartbeat", "0.5")


async def publish(client: httpx.AsyncClient, server: RunningServer, symbol: str, prices: list[float]) -> list[dict]:
    """Publish prices in order (batches of 500), returning the stored ticks."""
    stored: list[dict] = []
    for start in range(0, len(prices), 500):
        batch = [{"symbol": symbol, "price": p} for p in prices[start : start + 500]]
        response = await client.post(server.url + "/api/publish", json={"ticks": batch}, headers=server.auth)
        assert response.status_code == 201, response.text
        stored.extend(response.json()["ticks"])
    return stored


def prices(count: int, start: float = 1000.0) -> list[float]:
    """Distinct prices on the 0.05 grid, so every tick is recognisable."""
    return [round(start + 0.05 * i, 2) for i in range(count)]
