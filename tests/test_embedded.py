"""The bundled server the app starts: nothing in the user's folder can stand in for it, a chatty
server never freezes on a full pipe, and it stops when asked."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import httpx
import pytest

from tui.embedded import EmbeddedServer, EmbeddedServerError

MEGABYTE_OF_WARNINGS = textwrap.dedent(
    """
    import sys, threading

    def warn(lines):
        for n in range(lines):
            sys.stderr.write(f"warning {n}: " + "w" * 1000 + "\\n")
            sys.stderr.flush()

    warn(1024)  # before the server starts: it must not block before it can listen
    threading.Thread(target=warn, args=(1024,), daemon=True).start()  # and while it serves
    """
)


class ChattyServer(EmbeddedServer):
    """The real bundled server, with 2 MB of warnings on stderr around its start."""

    def command(self) -> list[str]:
        argv = super().command()
        code = argv.index("-c") + 1
        argv[code] = MEGABYTE_OF_WARNINGS + argv[code]
        return argv


def test_a_server_py_in_the_working_directory_or_on_pythonpath_cannot_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("server.py", "tui.py"):
        (tmp_path / name).write_text("raise SystemExit('the wrong server ran')\n")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "__init__.py").write_text("raise SystemExit('the wrong package ran')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with EmbeddedServer(["--no-feed"]) as url:
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/api/price/RELIANCE").json()["symbol"] == "RELIANCE"


def test_a_server_writing_megabytes_to_stderr_keeps_serving_and_stops_on_sigterm() -> None:
    server = ChattyServer(["--no-feed"])
    url = server.start()
    try:
        with httpx.Client(base_url=url) as http:
            for _ in range(50):
                assert http.get("/api/price/TCS").status_code == 200
        assert any(line.startswith("warning ") for line in server.last_lines)
    finally:
        server.stop()
    # It ended on our SIGTERM, cleanly (0), not by the SIGKILL that follows a server stuck on a write.
    assert server.exit_status == 0
    assert not server.died


def test_a_server_that_cannot_start_says_why_in_one_line() -> None:
    server = EmbeddedServer(["--history", "0"])
    with pytest.raises(EmbeddedServerError) as raised:
        server.start()
    message = str(raised.value)
    assert message.startswith("the bundled server did not start: ")
    assert "history" in message and "\n" not in message
    assert server.exit_status == 2


def test_a_server_that_dies_on_its_own_is_told_apart_from_one_we_stopped() -> None:
    server = EmbeddedServer(["--no-feed"])
    server.start()
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    assert server.died
    assert server.exit_status == -signal.SIGKILL
    server.stop()  # nothing left to stop; must not raise
