"""`pushpull-bench` as a user runs it: every mode against one bundled feed, a table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_measures_every_mode_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.bench",
            "--duration",
            "3",
            "--tick-rate",
            "10",
            "--poll-interval",
            "0.2",
            "--clients",
            "2",
            "--seed",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert "requests" in done.stdout and "sse" in done.stdout
    report = json.loads(out.read_text())
    assert set(report) == {"config", "modes", "server"}
    assert list(report["modes"]) == ["poll", "longpoll", "sse", "ws", "webhook"]
    for mode, figures in report["modes"].items():
        assert figures["updates"] > 0, mode
        assert figures["duplicates"] == 0, mode
        assert set(figures["delay_ms"]) == {"p50", "p95", "p99", "max"}
        assert figures["requests_per_update"] == round(figures["requests"] / figures["updates"], 3)
    for push in ("longpoll", "sse", "ws", "webhook"):
        assert report["modes"][push]["missed"] == 0, push
    assert report["modes"]["sse"]["requests"] == 2 and report["modes"]["ws"]["requests"] == 2  # one each
    assert report["modes"]["poll"]["requests_per_update"] >= 1.0
    assert "rss_bytes_per_connection" in report["server"]


def test_bench_bad_flags_are_one_line_and_exit_2() -> None:
    for args in (["--modes", "poll,smoke"], ["--clients", "0"], ["--duration", "x"]):
        done = subprocess.run([sys.executable, "-m", "tui.bench", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.strip().startswith("pushpull-bench: error:") and len(done.stderr.strip().splitlines()) == 1
