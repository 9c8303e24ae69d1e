"""Desktop notifications (`tui.desktop`): quietly nothing without a notifier, the title and body
handed to one where there is one, and one that hangs killed and reaped.

The notifiers here are small scripts put first on the PATH: the real lookup and the real process."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import until_sync
from tui.desktop import APP_NAME, notify_desktop


def put_on_path(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str, script: str) -> None:
    """An executable `name` in `folder`, and `folder` the only place on the PATH besides /bin."""
    command = folder / name
    command.write_text("#!/bin/sh\n" + script)
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/bin")


def test_without_a_notifier_it_is_quietly_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no notify-send, no osascript
    assert notify_desktop("pushpull alert", "RELIANCE above ₹1,320.00") is False


def test_notify_send_gets_the_title_and_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = tmp_path / "said.txt"
    put_on_path(monkeypatch, tmp_path, "notify-send", f"printf '%s\\n' \"$@\" > {said}.part && mv {said}.part {said}\n")
    body = "RELIANCE above ₹1,320.00: ₹1,320.45\nfirst seen by ws; poll +312 ms"
    assert notify_desktop("-pushpull alert", body) is True  # (a leading dash must stay a title)
    until_sync(said.exists)
    assert said.read_text(encoding="utf-8").split("\n")[:-1] == [
        f"--app-name={APP_NAME}",
        "--",
        "-pushpull alert",
        *body.split("\n"),
    ]


def test_osascript_gets_them_as_arguments_not_as_script_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = tmp_path / "said.txt"
    put_on_path(monkeypatch, tmp_path, "osascript", f"printf '%s\\n' \"$@\" > {said}.part && mv {said}.part {said}\n")
    assert notify_desktop('say "hi"', "TCS below ₹3,500.00") is True
    until_sync(said.exists)
    lines = said.read_text(encoding="utf-8").split("\n")[:-1]
    assert lines[-2:] == ['say "hi"', "TCS below ₹3,500.00"]
    assert all(line == "-e" for line in lines[0:-2:2]) and "display notification" in lines[3]


def test_a_notifier_that_hangs_is_killed_and_reaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    put_on_path(
        monkeypatch,
        tmp_path,
        "notify-send",
        f"echo $$ > {pid_file}.part && mv {pid_file}.part {pid_file}\nexec sleep 60\n",
    )
    assert notify_desktop("pushpull alert", "stuck", timeout=0.3) is True
    until_sync(pid_file.exists)
    pid = int(pid_file.read_text())

    def gone() -> bool:  # killed and waited for: not even a zombie is left
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    until_sync(gone)


def test_a_notifier_that_fails_is_only_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """notify-send without a D-Bus session (over SSH, say) fails: the alert goes on, the log says why."""
    caplog.set_level(logging.DEBUG, logger="pushpull.desktop")
    put_on_path(monkeypatch, tmp_path, "notify-send", "echo 'no D-Bus session' >&2\nexit 1\n")
    assert notify_desktop("pushpull alert", "RELIANCE above ₹1,320.00") is True
    until_sync(lambda: any("exited 1: no D-Bus session" in record.getMessage() for record in caplog.records))
