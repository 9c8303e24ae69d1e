"""`pushpull-bench` as a user runs it: every mode against one bundled feed, a table and JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import RunningServer, ServerFactory


def test_bench_bad_flags_are_one_line_and_exit_2() -> None:
    for args in (["--modes", "poll,smoke"], ["--clients", "0"], ["--duration", "x"]):
        done = subprocess.run([sys.executable, "-m", "tui.bench", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.strip().startswith("pushpull-bench: error:") and len(done.stderr.strip().splitlines()) == 1


def test_the_bench_measures_every_mode_and_polls_as_poisson_theory_says(tmp_path: Path) -> None:
    """The numbers must be right, not only present: at λI = 0.5 the poll figures match Poisson theory,
    computed here independently of the bench, and push modes miss nothing with millisecond delays.

    λ is estimated from the ticks the poll clients saw or skipped (a seeded feed still has Poisson
    counts); the tolerances are about 3 standard deviations for 1,300 polls, plus room for a busy
    machine's scheduling in the delay band.
    """
    rate, interval, duration, clients = 10.0, 0.05, 13.0, 5  # theory: p50 0.44·I, 2.54 req/update, 21% missed
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tui.bench", "--tick-rate", f"{rate:g}",
         "--poll-interval", f"{interval:g}", "--duration", f"{duration:g}", "--clients", str(clients),
         "--seed", "7", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wire bytes" in done.stdout and "against theory" in done.stdout  # the table, and theory beside it
    report = json.loads(out.read_text())
    assert set(report) == {"config", "modes", "server"} and "rss_bytes_per_connection" in report["server"]
    modes = report["modes"]
    assert list(modes) == ["poll", "longpoll", "sse", "ws", "webhook"]  # every mode by default
    for mode, figures in modes.items():
        assert figures["updates"] > 0 and figures["duplicates"] == 0, mode
        assert set(figures["delay_ms"]) == {"p50", "p95", "p99", "max"}
        assert figures["requests_per_update"] == round(figures["requests"] / figures["updates"], 3)
        assert figures["wire_bytes_per_update"] == round(figures["wire_bytes"] / figures["updates"], 3)
        theory = figures["theory"]  # every mode has theory beside it, and its row in the output
        assert set(theory) == {"delay_ms_p50", "delay_ms_p99", "requests_per_update", "missed_fraction", "note"}
        assert f"{theory['requests_per_update']:.2f}" in next(
            line for line in done.stdout.splitlines() if line.startswith(f"\u2502 {mode} ") and " / " in line
        ), (mode, done.stdout)
    assert modes["sse"]["requests"] == clients and modes["ws"]["requests"] == clients  # one connection each
    # Theory at the rate the server reports, on loopback (no link: latency 0), computed here.
    assert report["config"]["tick_rate"] == rate and report["config"]["latency_s"] == 0
    x = rate * interval
    assert modes["poll"]["theory"]["delay_ms_p50"] == pytest.approx(-math.log((1 + math.exp(-x)) / 2) / rate * 1000)
    assert modes["poll"]["theory"]["missed_fraction"] == pytest.approx(1 - (1 - math.exp(-x)) / x, abs=1e-4)
    for push in ("longpoll", "sse", "ws", "webhook"):
        assert modes[push]["theory"]["delay_ms_p50"] == 0 and modes[push]["theory"]["missed_fraction"] == 0, push
    assert modes["longpoll"]["theory"]["requests_per_update"] == 1  # a request per tick, none batched
    poll = modes["poll"]
    seen_or_skipped = poll["updates"] + poll["missed"]
    assert seen_or_skipped > 0.6 * rate * duration * clients, poll  # the feed ran at about the rate asked
    # λ̂·I, close to 0.5, with I the interval the polls kept (a busy machine stretches the beat a
    # little, and theory must be asked about the polling that happened, not the one asked for).
    kept_interval = duration * clients / poll["requests"]
    assert kept_interval == pytest.approx(interval, rel=0.2), poll
    x = seen_or_skipped / clients / duration * kept_interval
    hit = 1 - math.exp(-x)

    assert 0.3 * interval * 1000 <= poll["delay_ms"]["p50"] <= 0.7 * interval * 1000, poll
    assert poll["requests_per_update"] == pytest.approx(1 / hit, rel=0.15), (x, poll)
    assert poll["missed"] / seen_or_skipped == pytest.approx(1 - hit / x, abs=0.08), (x, poll)
    assert poll["empty_responses"] > 0.5 * (poll["requests"] - poll["updates"]), poll  # 304s, not bodies

    assert modes["webhook"]["missed"] == 0
    for push in ("longpoll", "sse", "ws"):
        figures = modes[push]
        assert figures["missed"] == 0 and figures["duplicates"] == 0, (push, figures)
        assert figures["updates"] >= 0.9 * seen_or_skipped, (push, figures)
        # Push answers within milliseconds, polling in about half an interval. The band is relative
        # and wide (CI machines are shared: a loaded one gave long poll 6 ms against poll's 21).
        assert figures["delay_ms"]["p50"] < 0.5 * poll["delay_ms"]["p50"], (push, figures, poll)


def test_bench_against_a_server_refuses_an_unknown_symbol_or_a_dead_url(server: RunningServer) -> None:
    """`--server` with a symbol it does not publish, or nobody listening: one line, exit 2, at once."""
    cases = (
        (["--server", server.url, "--symbol", "NOPE"], "does not publish NOPE; it publishes RELIANCE"),
        (["--server", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
    )
    for args, says in cases:
        done = subprocess.run([sys.executable, "-m", "tui.bench", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("pushpull-bench: error:") and len(done.stderr.strip().splitlines()) == 1
        assert says in done.stderr, done.stderr


def test_the_bench_spreads_its_clients_over_several_servers_and_reads_each(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """`--server URL1,URL2`: client i of each mode talks to server i mod 2; each server saw its own
    share (its /api/stats says so), and the report names every instance with what it held."""
    servers = [server_factory("--no-feed"), server_factory("--no-feed")]
    instances = [httpx.get(server.url + "/api/stats").json()["instance"] for server in servers]
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tui.bench", "--server", ",".join(s.url for s in servers), "--modes", "sse,ws",
         "--clients", "3", "--duration", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for server, instance in zip(servers, instances, strict=True):
        assert f"server {server.url} ({instance}, broker memory)" in done.stdout, done.stdout
    assert "separate feeds" in done.stdout  # two memory brokers: not one feed, and the bench says so
    report = json.loads(out.read_text())
    assert report["config"]["servers"] == [s.url for s in servers]
    # Two feeds have no one tick rate: no theory, said in the JSON and not printed.
    assert all(figures["theory"] is None for figures in report["modes"].values())
    assert "against theory" not in done.stdout
    shares = report["server"]["instances"]
    assert [share["instance"] for share in shares] == instances
    assert [share["clients"] for share in shares] == [2, 1]  # clients 0 and 2 on the first, 1 on the second
    for server, share in zip(servers, shares, strict=True):
        transports = httpx.get(server.url + "/api/stats").json()["transports"]
        assert transports["sse"]["requests"] == transports["ws"]["requests"] == share["clients"]  # one stream each
        assert share["open_connections"] == 2 * share["clients"]
    assert report["server"]["open_connections"] == 6
