"""Real servers for the tests: `pushpull-server` processes on 127.0.0.1 and a free port each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import TOKEN, RunningServer, ServerFactory, start_server


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
    """A fresh quiet server: no simulator, publishing by token, short heartbeats."""
    return server_factory("--no-feed", "--heartbeat", "0.5")
