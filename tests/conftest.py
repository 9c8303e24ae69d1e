"""Real servers for the tests: `pushpull-server` processes on 127.0.0.1 and a free port each.

A server start costs about half a second, more than most stories. So a module shares one quiet
server (`shared_server`) for the stories that do not need a fresh one: those that only read, and
those that publish on a symbol of their own (`own_symbol`), whose history no other story touched.
Stories that need fresh state (seq numbers on screen, a restart, particular flags) start their own.

A module that sets `BOTH_PATHS = True` runs three times: on the fast path (the hub writing straight
to uvicorn's sockets) with the in-process broker; with every server it starts on the portable ASGI
path (`--no-fast-path`), which must be just as correct; and with every server on the Redis broker
(each in a database of its own in one `redis-server`, `tests.redis_server`). A module-scoped
fixture there that starts a server must ask for `serving_path`, so that it starts one per turn.
A module may instead name its turns: `SERVING = ("fast path", "redis broker")`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests import helpers
from tests.helpers import PORTABLE_PATH_ENV, TOKEN, RunningServer, ServerFactory, start_server
from tests.redis_server import RedisServer

# The app reads its settings from the user's config folder (`tui.config`): the tests get an empty
# one of their own, so that a developer's saved settings change nothing here.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pushpull-tests-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)

PATHS = ("fast path", "portable path", "redis broker")

SPARE_SYMBOLS = tuple(f"OWN{n}" for n in range(1, 41))
"""Symbols the shared server publishes besides the usual six, one per story that wants its own."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    turns = getattr(metafunc.module, "SERVING", PATHS if getattr(metafunc.module, "BOTH_PATHS", False) else None)
    if turns:
        metafunc.parametrize("serving_path", turns, scope="module", indirect=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One `redis-server` for the whole run, started when a test first needs it."""
    redis = RedisServer()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="module", autouse=True)
def serving_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which way the servers this module starts write to their clients, and through which broker
    (see the module docstring)."""
    path: str = getattr(request, "param", PATHS[0])
    if path == "portable path":
        helpers.SERVER_ENV.update(PORTABLE_PATH_ENV)
    if path == "redis broker":
        helpers.SERVER_BROKER = request.getfixturevalue("redis_server").next_url
    try:
        yield path
    finally:
        for name in PORTABLE_PATH_ENV:
            helpers.SERVER_ENV.pop(name, None)
        helpers.SERVER_BROKER = None


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


@pytest.fixture(scope="module")
def shared_server(serving_path: str) -> Iterator[RunningServer]:
    """One quiet server for the module, with the usual six symbols and spare ones (see `own_symbol`).

    It must end as cleanly as it started: no story may have made it log a traceback.
    """
    symbols = ",".join(("RELIANCE", "TCS", "INFY", "HDFCBANK", "ICICIBANK", "SBIN", *SPARE_SYMBOLS))
    server = start_server("--no-feed", "--heartbeat", "0.5", "--symbols", symbols)
    try:
        yield server
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def spare_symbols() -> Iterator[str]:
    return iter(SPARE_SYMBOLS)


@pytest.fixture
def own_symbol(shared_server: RunningServer, spare_symbols: Iterator[str]) -> str:
    """A symbol of the shared server that no other story has used: its history is its opening tick (seq 1)."""
    symbol = next(spare_symbols, None)
    assert symbol is not None, "more stories than spare symbols: add some to SPARE_SYMBOLS"
    return symbol
