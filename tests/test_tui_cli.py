"""`pushpull-tui` and `pushpull-bench` refuse what would do nothing or cannot be, in one line with
the reason (and the range, for a number), exit status 2, before any window opens."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import RunningServer
from tui.__main__ import parse_args
from tui.alerts import AlertRule


@pytest.mark.parametrize(
    ("command", "args", "said"),
    [
        ("tui", ["--server", "http://127.0.0.1:9", "--seed", "3"], "--seed sets the bundled server"),
        ("tui", ["--server", "http://127.0.0.1:9", "--tick-rate", "5", "--seed", "1"], "--tick-rate and --seed set"),
        ("tui.bench", ["--server", "http://127.0.0.1:9", "--tick-rate", "5"], "--tick-rate sets the bundled server"),
        ("tui", ["--poll-interval", "0.01"], "expected a number from 0.05 to 60"),
        ("tui.bench", ["--poll-interval", "61"], "expected a number from 0.05 to 60"),
        ("tui", ["--tick-rate", "-1"], "expected a number from 0 to 10000"),
        ("tui", ["--modes", ",".join(["poll"] * 7)], "7 panes asked for; at most 6"),
        ("tui.bench", ["--clients", "0"], "expected a whole number from 1 to 10000"),
        ("tui", ["--log", "/nonexistent-dir/pushpull.log"], "cannot write the log"),
        ("tui", ["--alert", "RELIANCE"], "argument --alert: invalid alert 'RELIANCE': no >, < or %"),
        ("tui", ["--alert", "TCS<3500", "--alert", "INFY%200"], "invalid alert 'INFY%200': a percentage must be"),
        ("tui", ["--alert", ">1320"], "invalid alert '>1320': no symbol before '>'"),
        # several servers: the bad entry named; a server twice adds nothing; the feed flags still refused
        ("tui", ["--server", "http://127.0.0.1:9,ftp://x"], "invalid server URL 'ftp://x'"),
        ("tui", ["--server", "http://127.0.0.1:9,http://h:99999"], "invalid port in server URL 'http://h:99999'"),
        ("tui", ["--server", "http://127.0.0.1:9,,http://127.0.0.1:10"], "empty entry in the server list"),
        ("tui", ["--server", "http://127.0.0.1:9,http://127.0.0.1:9/"], "'http://127.0.0.1:9' is listed twice"),
        ("tui", ["--server", ",".join(f"http://127.0.0.1:{p}" for p in range(9, 16))], "7 servers given; at most 6"),
        ("tui.bench", ["--server", "http://127.0.0.1:9,not a url"], "invalid server URL 'not a url'"),
        ("tui.bench", ["--server", "http://127.0.0.1:9,http://127.0.0.1:10", "--tick-rate", "5"], "--tick-rate sets"),
        (
            "tui",
            ["--server", "http://127.0.0.1:9,http://127.0.0.1:10", "--seed", "3"],
            "--seed sets the bundled server",
        ),
    ],
)
def test_a_flag_that_cannot_work_is_one_line_with_the_reason_and_exit_2(
    command: str, args: list[str], said: str
) -> None:
    done = subprocess.run([sys.executable, "-m", command, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    prog = "pushpull-bench" if command == "tui.bench" else "pushpull-tui"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), done.stderr
    assert said in lines[0], lines[0]
    assert done.stdout == ""


def test_alerts_are_repeatable_and_none_by_default() -> None:
    assert parse_args([]).alerts == []
    assert parse_args(["--alert", "RELIANCE>1320", "--alert", "tcs < 3500", "--alert", "INFY%2"]).alerts == [
        AlertRule("RELIANCE", ">", 1320.0),
        AlertRule("TCS", "<", 3500.0),
        AlertRule("INFY", "%", 2.0),
    ]


def test_an_alert_on_a_symbol_the_server_does_not_publish_is_refused_at_start(shared_server: RunningServer) -> None:
    """Like `--symbol`: one line naming the alert and the symbols there are, exit 2, no window."""
    done = subprocess.run(
        [sys.executable, "-m", "tui", "--server", shared_server.url, "--alert", "TCS<3500", "--alert", "nope>5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "pushpull-tui: error: alert 'NOPE>5': the server does not publish NOPE; it publishes RELIANCE, TCS, INFY"
    ), lines[0]
    assert done.stdout == ""
