"""`pushpull-server` as a user types it: help, version, clear one-line errors, env vars, signals, seeds.

Every command runs both ways a user would: `python -m server` and the installed console script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import RunningServer, ServerFactory, clean_env, start_server, until

WAIT = 20.0
"""Upper bound on any single wait (a process to start, answer or exit), in seconds."""
MODULE = [sys.executable, "-m", "server"]
SCRIPT = [str(Path(sys.executable).parent / "pushpull-server")]
LAUNCHERS = [pytest.param(MODULE, id="python-m-server"), pytest.param(SCRIPT, id="pushpull-server")]
ERROR_LINE = re.compile(r"^pushpull-server: error: \S.*$")


def run_cli(launcher: list[str], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command to completion (it must not start serving) and capture its output."""
    return subprocess.run(
        [*launcher, *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env or clean_env(),
        stdin=subprocess.DEVNULL,
    )


BAD_FLAGS: list[list[str]] = [
    ["--port", "abc"],
    ["--port", "70000"],
    ["--tick-rate", "-1"],
    ["--tick-rate", "nan"],
    ["--history", "0"],
    ["--broker", "nope"],
    ["--symbols", ","],
    ["--webhook-allow", "300.0.0.0/8"],
    ["--history", "200", "--ws-max-lag", "300"],
    ["--frobnicate"],
    ["--port"],
]
BAD_ENV: list[dict[str, str]] = [
    {"PUSHPULL_TICK_RATE": "x"},
    {"PUSHPULL_PORT": "abc"},
    {"PUSHPULL_HISTORY": "0"},
    {"PUSHPULL_NO_FEED": "maybe"},
    {"PUSHPULL_BROKER": "nope"},
]
SCRIPT_BAD_FLAGS: list[list[str]] = [["--port", "abc"], ["--history", "0"]]

Key = tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]


class CliRuns:
    """Short-lived CLI runs, started together in a few threads (each costs ~0.5 s of imports)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.runs: dict[Key, Future[subprocess.CompletedProcess[str]]] = {}

    def start(self, launcher: list[str], *args: str, env: dict[str, str] | None = None) -> Key:
        key = (tuple(launcher), args, tuple(sorted((env or {}).items())))
        if key not in self.runs:
            self.runs[key] = self.pool.submit(run_cli, launcher, *args, env=clean_env(env))
        return key

    def __call__(
        self, launcher: list[str], *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.runs[self.start(launcher, *args, env=env)].result(timeout=WAIT * 2)


@pytest.fixture(scope="module")
def cli() -> Iterator[CliRuns]:
    """Runs every short CLI case of this module up front, in parallel; tests read their result."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = CliRuns(pool)
        for launcher in (MODULE, SCRIPT):
            runs.start(launcher, "--help")
            runs.start(launcher, "--version")
            for args in SCRIPT_BAD_FLAGS:
                runs.start(launcher, *args)
        for args in BAD_FLAGS:
            runs.start(MODULE, *args)
        for env in BAD_ENV:
            runs.start(MODULE, env=env)
        yield runs


def assert_one_line_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, exactly one `pushpull-server: error: ...` line on stderr."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert result.stdout == "", result.stdout
    return lines[0]


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    """Servers a test started with `start_server`; stopped by PID at the end."""
    started: list[RunningServer] = []
    yield started
    for server in started:
        server.stop()


# --- help, version ---------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_help_lists_every_flag_and_exits_0(cli: CliRuns, launcher: list[str]) -> None:
    """`--help` prints usage naming every documented flag and the env-var rule, and exits 0."""
    result = cli(launcher, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "pushpull-server" in result.stdout
    for flag in (
        "--host", "--port", "--symbols", "--tick-rate", "--seed", "--no-feed", "--broker", "--publish-token",
        "--history", "--webhook-allow", "--cors", "--version", "--help",
    ):  # fmt: skip
        assert flag in result.stdout, flag
    assert "PUSHPULL_" in result.stdout


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_version_prints_name_and_version(cli: CliRuns, launcher: list[str]) -> None:
    """`--version` prints `pushpull-server 0.1.0` and exits 0."""
    result = cli(launcher, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pushpull-server 0.1.0"


# --- bad flags and env vars --------------------------------------------------------------------


@pytest.mark.parametrize("args", BAD_FLAGS, ids=lambda args: " ".join(args))
def test_a_bad_flag_is_one_error_line_and_exit_2(cli: CliRuns, args: list[str]) -> None:
    """A bad flag or value gets one `pushpull-server: error: ...` line and exit 2, never a traceback."""
    assert_one_line_usage_error(cli(MODULE, *args))


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("args", SCRIPT_BAD_FLAGS, ids=["port", "history"])
def test_the_installed_script_reports_bad_flags_the_same_way(
    cli: CliRuns, launcher: list[str], args: list[str]
) -> None:
    """The console script and `python -m server` fail identically on a bad value, naming the flag."""
    line = assert_one_line_usage_error(cli(launcher, *args))
    assert args[0] in line


@pytest.mark.parametrize("env", BAD_ENV, ids=lambda env: next(iter(env)))
def test_a_bad_env_var_is_one_error_line_naming_it(cli: CliRuns, env: dict[str, str]) -> None:
    """A bad `PUSHPULL_*` value fails like a bad flag, and the line names the variable."""
    line = assert_one_line_usage_error(cli(MODULE, env=env))
    assert next(iter(env)) in line


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_port_already_in_use_is_one_error_line(launcher: list[str]) -> None:
    """Starting on a port another process is listening on: one line saying so, exit 2."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(launcher, "--host", "127.0.0.1", "--port", str(port), "--no-feed")
    line = assert_one_line_usage_error(result)
    assert "already in use" in line
    assert str(port) in line


# --- configuration that works -------------------------------------------------------------------


async def test_env_vars_configure_the_server(servers: list[RunningServer]) -> None:
    """`PUSHPULL_SYMBOLS`, `PUSHPULL_NO_FEED`, `PUSHPULL_HISTORY` and `PUSHPULL_PUBLISH_TOKEN` all take effect."""
    env = {
        "PUSHPULL_SYMBOLS": "ABC,XYZ",
        "PUSHPULL_NO_FEED": "1",
        "PUSHPULL_TICK_RATE": "50",
        "PUSHPULL_HISTORY": "7",
        "PUSHPULL_PUBLISH_TOKEN": "from-env",
    }
    server = start_server(token=None, env=env)
    servers.append(server)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        symbols = (await client.get(server.url + "/api/symbols")).json()
        stats = (await client.get(server.url + "/api/stats")).json()
        good = await client.post(
            server.url + "/api/publish",
            json={"symbol": "ABC", "price": 10.0},
            headers={"Authorization": "Bearer from-env"},
        )
        bad = await client.post(
            server.url + "/api/publish",
            json={"symbol": "ABC", "price": 10.0},
            headers={"Authorization": "Bearer test-token"},
        )
    assert [t["symbol"] for t in symbols] == ["ABC", "XYZ"]
    assert [t["seq"] for t in symbols] == [1, 1]
    assert all(100 <= t["price"] <= 3000 for t in symbols)
    assert stats["symbols"] == ["ABC", "XYZ"]
    assert stats["tick_rate"] == 0  # --no-feed wins over a tick rate
    assert stats["history"] == 7
    assert good.status_code == 201 and good.json()["seq"] == 2
    assert bad.status_code == 401


async def test_a_flag_overrides_its_env_var_and_symbols_are_normalised(servers: list[RunningServer]) -> None:
    """`--symbols infy,tcs,NEWCO` beats `PUSHPULL_SYMBOLS`; names are upper-cased; known symbols open
    at their listed price, a new one at a price on the 0.05 grid."""
    server = start_server("--symbols", "infy, tcs,NEWCO", "--no-feed", env={"PUSHPULL_SYMBOLS": "ABC,XYZ"})
    servers.append(server)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        symbols = {t["symbol"]: t for t in (await client.get(server.url + "/api/symbols")).json()}
        reliance = await client.get(server.url + "/api/price/RELIANCE")
        newco = await client.get(server.url + "/api/price/NEWCO")
    assert list(symbols) == ["INFY", "TCS", "NEWCO"]
    assert symbols["INFY"]["price"] == 1587.35
    assert symbols["TCS"]["price"] == 3425.80
    steps = symbols["NEWCO"]["price"] / 0.05
    assert abs(steps - round(steps)) < 1e-6
    assert reliance.status_code == 404
    assert newco.status_code == 200 and newco.json() == symbols["NEWCO"]


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("launcher", "sig"),
    [
        pytest.param(MODULE, signal.SIGTERM, id="python-m-server-SIGTERM"),
        pytest.param(MODULE, signal.SIGINT, id="python-m-server-SIGINT"),
        pytest.param(SCRIPT, signal.SIGTERM, id="pushpull-server-SIGTERM"),
        pytest.param(SCRIPT, signal.SIGINT, id="pushpull-server-SIGINT"),
    ],
)
async def test_a_signal_ends_every_stream_and_exits_0(
    servers: list[RunningServer], launcher: list[str], sig: signal.Signals
) -> None:
    """With an SSE stream, a WebSocket and a held long poll open, SIGTERM / SIGINT closes each of
    them cleanly (stream end, close 1012 or 1001, a 503 with retry-after) and the server exits 0, no traceback."""
    server = start_server("--no-feed", "--heartbeat", "0.5", token=None, launcher=launcher)
    servers.append(server)
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=None)) as client,
        aconnect_sse(client, "GET", server.url + "/api/stream/RELIANCE") as source,
        connect(server.ws_url) as ws,
    ):
        events = source.aiter_sse()
        async with asyncio.timeout(WAIT):
            while (await anext(events)).event != "tick":
                pass
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["RELIANCE"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            assert json.loads(await ws.recv())["type"] == "tick"
        held = asyncio.create_task(client.get(server.url + "/api/longpoll/RELIANCE?after=1&timeout=60"))

        async def holding() -> bool:
            stats = (await client.get(server.url + "/api/stats")).json()
            return bool(stats["transports"]["longpoll"]["open_connections"] >= 1)

        await until(holding, timeout=WAIT, step=0.02)

        server.process.send_signal(sig)

        async with asyncio.timeout(WAIT):
            leftover = [event.event async for event in events]
        assert "tick" not in leftover
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
        assert ws.close_code in (1012, 1001), (ws.close_code, ws.close_reason)
        async with asyncio.timeout(WAIT):
            answer = await held
        assert answer.status_code == 503, answer.status_code  # shutting down: come back later, not at once
        assert answer.headers["retry-after"] == "2"

    code, output = await asyncio.to_thread(server.wait, WAIT)
    assert code == 0, output
    assert "Traceback" not in output, output


# --- the simulated feed -------------------------------------------------------------------------


async def first_prices(client: httpx.AsyncClient, server: RunningServer, symbol: str, count: int) -> list[Any]:
    """The first `count` ticks of `symbol` as (seq, price), fetched from long-poll history."""
    url = f"{server.url}/api/longpoll/{symbol}"
    async with asyncio.timeout(WAIT):
        while (await client.get(f"{url}?after={count - 1}&timeout=5")).status_code != 200:
            pass
    body = (await client.get(f"{url}?after=0")).json()
    assert body["gap"] is False
    return [(t["seq"], t["price"]) for t in body["ticks"][:count]]


async def test_the_feed_publishes_ticks_and_a_seed_makes_it_reproducible(servers: list[RunningServer]) -> None:
    """With `--tick-rate 50 --seed 7` ticks stream in by themselves, and a second server with the
    same seed publishes the same prices in the same order; another seed does not."""
    flags = ("--tick-rate", "50", "--history", "1000")
    first = start_server(*flags, "--seed", "7")
    servers.append(first)
    second = start_server(*flags, "--seed", "7")
    servers.append(second)
    other = start_server(*flags, "--seed", "8")
    servers.append(other)
    async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=None)) as client:
        seqs: list[int] = []
        async with aconnect_sse(client, "GET", first.url + "/api/stream/TCS") as source:
            async with asyncio.timeout(WAIT):
                async for event in source.aiter_sse():
                    if event.event == "tick":
                        seqs.append(json.loads(event.data)["seq"])
                    if len(seqs) == 5:
                        break
        assert seqs == list(range(seqs[0], seqs[0] + 5))

        ours = {s: await first_prices(client, first, s, 12) for s in ("RELIANCE", "SBIN")}
        theirs = {s: await first_prices(client, second, s, 12) for s in ("RELIANCE", "SBIN")}
        different = await first_prices(client, other, "RELIANCE", 12)
    assert ours == theirs
    assert [seq for seq, _ in ours["RELIANCE"]] == list(range(1, 13))
    assert ours["RELIANCE"][0] == (1, 1312.45)
    assert len({price for _, price in ours["RELIANCE"]}) > 1, "the price never moved"
    assert different != ours["RELIANCE"]


async def test_access_log_logs_every_request_and_is_off_by_default(server_factory: ServerFactory) -> None:
    """`--access-log` prints one line per request, fast paths included; without it, nothing."""
    for flags, logged in ((["--access-log"], True), ([], False)):
        server = server_factory("--no-feed", *flags)
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(server.url + "/api/price/TCS")).status_code == 200
            assert (await client.get(server.url + "/api/longpoll/TCS")).status_code == 200
            assert (await client.get(server.url + "/healthz")).status_code == 200
        code, output = server.stop()  # uvicorn writes access lines to stdout, errors to stderr: both here
        assert code == 0, output
        lines = [line for line in output.splitlines() if '"GET /' in line][-3:]  # after start-up's /healthz
        expected = [
            '"GET /api/price/TCS HTTP/1.1" 200',
            '"GET /api/longpoll/TCS HTTP/1.1" 200',
            '"GET /healthz HTTP/1.1" 200',
        ]
        if logged:
            assert len(lines) == 3 and all(e in line for e, line in zip(expected, lines, strict=True)), output
        else:
            assert lines == [], output


async def test_shutting_down_with_an_idle_websocket_logs_no_error(server_factory: ServerFactory) -> None:
    """A WebSocket client that never subscribed, still open when the server stops: a clean exit."""
    server = server_factory("--no-feed")
    async with connect(server.url.replace("http", "ws", 1) + "/ws") as socket_:
        await socket_.send('{"op": "ping"}')
        assert json.loads(await socket_.recv())["type"] == "pong"
        code, output = await asyncio.to_thread(server.stop)
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(socket_.recv(), 5)
    assert code == 0, output
    assert "ERROR" not in output and "Traceback" not in output, output
