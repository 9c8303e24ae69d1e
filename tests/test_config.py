"""`pushpull-tui`'s config file (`tui.config`): found, read under the flags, refused clearly, saved by `w`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import RunningServer, until
from tui.__main__ import parse_args
from tui.alerts import parse_rule
from tui.app import PushPullApp
from tui.config import load, save
from tui.link import PROFILES

WAIT = 20.0

GOOD = """\
server = "http://127.0.0.1:8123"
symbol = "tcs"
modes = ["poll", "sse"]
poll_interval = 0.5
theme = "nord"
"""


def test_the_file_gives_the_defaults_and_a_flag_wins(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    args = parse_args(["--config", str(path)])
    assert (args.server, args.symbol, args.modes, args.poll_interval, args.theme) == (
        ["http://127.0.0.1:8123"],
        "TCS",
        ["poll", "sse"],
        0.5,
        "nord",
    )
    assert args.config == path
    args = parse_args(["--config", str(path), "--symbol", "INFY", "--modes", "ws", "--poll-interval", "2"])
    assert (args.symbol, args.modes, args.poll_interval, args.theme) == ("INFY", ["ws"], 2.0, "nord")


def test_without_config_the_file_is_found_in_the_users_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = parse_args([])
    assert args.config == tmp_path / "pushpull" / "config.toml" and args.symbol == "RELIANCE"  # none yet: defaults
    (tmp_path / "pushpull").mkdir()
    (tmp_path / "pushpull" / "config.toml").write_text('symbol = "SBIN"\n')
    assert parse_args([]).symbol == "SBIN"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("symbol = ", "not valid TOML"),
        (
            'colour = "red"\n',
            "unknown key 'colour' (known: server, symbol, modes, poll_interval, theme, network, alerts)",
        ),
        ('server = "ftp://x"\n', "key 'server': invalid server URL 'ftp://x'"),
        ("server = [1, 2]\n", "key 'server': expected a string or a list of strings"),
        ('modes = ["poll", "smoke"]\n', "key 'modes': unknown mode(s) smoke"),
        ('poll_interval = "fast"\n', "key 'poll_interval': expected a number of seconds, got 'fast'"),
        ("poll_interval = 900\n", "key 'poll_interval':"),
        ('theme = "neon"\n', "key 'theme': unknown theme 'neon'"),
        ("symbol = 5\n", "key 'symbol': expected a symbol name"),
        ('alerts = "RELIANCE>1320"\n', 'key \'alerts\': expected a list of rules such as ["RELIANCE>1320", "INFY%2"]'),
        ("alerts = [1320]\n", "key 'alerts': expected a list of rules"),
        ('alerts = ["TCS<3500", "RELIANCE=1320"]\n', "key 'alerts': invalid alert 'RELIANCE=1320': no >, < or %"),
        ('alerts = ["INFY%200"]\n', "key 'alerts': invalid alert 'INFY%200': a percentage must be above 0"),
        ('network = "moon"\n', "key 'network': unknown network 'moon': choose from loopback, lan, broadband, 4g"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as ended:
        parse_args(["--config", str(path)])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and str(path) in err, err


def test_a_missing_config_named_by_the_flag_is_an_error_from_the_real_command(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    done = subprocess.run(
        [sys.executable, "-m", "tui", "--config", str(missing)], capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"pushpull-tui: error: config file {missing} not found"


async def test_w_saves_the_layout_and_a_restart_reads_it_back(shared_server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "config.toml"
    app = PushPullApp(shared_server.url, modes=["poll", "sse"], stats_interval=None, theme="nord", config_path=path)
    async with asyncio.timeout(WAIT), app.run_test(size=(100, 30), notifications=True) as pilot:
        assert app.theme == "nord"
        await pilot.press("m")  # the first pane: poll -> longpoll
        await pilot.press("minus")  # poll faster
        await pilot.press("w")
        await until(lambda: path.exists(), pilot=pilot)
        assert any(str(path) in str(n.message) for n in app._notifications)
        interval = app.poll_interval
    saved = load(path).values
    assert saved == {
        "symbol": "RELIANCE",
        "modes": ["longpoll", "sse"],
        "poll_interval": interval,
        "theme": "nord",
        "server": [shared_server.url],
        "alerts": [],
        "network": "loopback",
    }
    args = parse_args(["--config", str(path)])
    assert (args.modes, args.poll_interval, args.theme, args.server) == (
        ["longpoll", "sse"],
        interval,
        "nord",
        [shared_server.url],
    )


def test_alert_flags_add_to_the_files_alerts_each_held_once(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('alerts = ["RELIANCE>1320", "tcs < 3500"]\n')
    assert parse_args(["--config", str(path)]).alerts == [parse_rule("RELIANCE>1320"), parse_rule("TCS<3500")]
    args = parse_args(["--config", str(path), "--alert", "INFY%2", "--alert", "reliance>1320.0"])
    assert [str(rule) for rule in args.alerts] == ["RELIANCE>1320", "TCS<3500", "INFY%2"]
    path.write_text("alerts = []\n")
    assert parse_args(["--config", str(path)]).alerts == []
    assert parse_args(["--config", str(path), "--alert", "SBIN<800"]).alerts == [parse_rule("SBIN<800")]


def test_alerts_are_saved_as_their_canonical_text_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save(path, {"symbol": "TCS", "alerts": [parse_rule("RELIANCE>1320"), "infy % 2.0"]})
    assert 'alerts = [\n    "RELIANCE>1320",\n    "INFY%2",\n]' in path.read_text()
    assert load(path).values == {"symbol": "TCS", "alerts": [parse_rule("RELIANCE>1320"), parse_rule("INFY%2")]}
    save(path, {"alerts": []})
    assert load(path).values == {"alerts": []}
    with pytest.raises(ValueError, match="invalid alert 'RELIANCE'"):
        save(path, {"alerts": ["RELIANCE"]})
    assert load(path).values == {"alerts": []}  # (a refused save leaves the file as it was)


def test_the_files_network_is_the_default_and_a_link_of_ones_own_wins(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('network = "4g"\n')
    assert parse_args(["--config", str(path)]).link == PROFILES["4g"]
    assert parse_args(["--config", str(path), "--network", "satellite"]).link == PROFILES["satellite"]
    own = parse_args(["--config", str(path), "--latency", "40"]).link  # (not refused as --network with --latency)
    assert own is not None and own.name == "custom" and own.latency_ms == 40
