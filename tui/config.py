"""Saved settings for `pushpull-tui`: a TOML file, read at start-up, written by the save key.

Where: `--config PATH`, else `config.toml` in the user's config folder (`platformdirs`:
`$XDG_CONFIG_HOME/pushpull/config.toml` on Linux). The file gives the app's defaults; a flag on
the command line wins over it. A file that is not TOML, a key the app does not know, or a value it
would refuse as a flag is one line naming the key and the problem, and exit 2: a typo must not be
ignored quietly.

Example:

    server = "http://127.0.0.1:8000"     # or a list of URLs sharing a broker
    symbol = "TCS"
    modes = ["poll", "sse", "ws"]
    poll_interval = 0.5
    theme = "nord"
    alerts = ["RELIANCE>1320", "INFY%2"]  # `--alert` flags add to these
    network = "4g"                        # a link profile (`tui.link`); a `--latency` of one's own wins
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w
from textual.theme import BUILTIN_THEMES

from server.commandline import number
from tui.alerts import AlertRule, parse_rule
from tui.arguments import mode_list, server_urls
from tui.defaults import POLL_INTERVAL_RANGE

__all__ = ["KEYS", "ConfigError", "default_path", "load", "save"]


class ConfigError(Exception):
    """A config file the app cannot use; the message names the file, the key and the problem."""


def default_path() -> Path:
    return platformdirs.user_config_path("pushpull") / "config.toml"


def _text_list(value: Any) -> str:
    """A TOML string or list of strings as the comma-separated text the matching flag takes."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise argparse.ArgumentTypeError("expected a string or a list of strings")


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise argparse.ArgumentTypeError('expected a symbol name such as "TCS"')
    return value.strip().upper()


def _poll_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}")
    low, high = POLL_INTERVAL_RANGE
    converted: float = number(low, high)(str(value))
    return converted


def _theme(value: Any) -> str:
    if not isinstance(value, str) or value not in BUILTIN_THEMES:
        raise argparse.ArgumentTypeError(f"unknown theme {value!r}: choose from {', '.join(sorted(BUILTIN_THEMES))}")
    return value


def _alerts(value: Any) -> list[AlertRule]:
    """A list of rule strings, each as `--alert` takes it (an empty list: none)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise argparse.ArgumentTypeError('expected a list of rules such as ["RELIANCE>1320", "INFY%2"]')
    return [parse_rule(item) for item in value]


def _network(value: Any) -> str:
    from tui.link import PROFILES

    if not isinstance(value, str) or value not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown network {value!r}: choose from {', '.join(PROFILES)}")
    return value


KEYS: dict[str, Callable[[Any], Any]] = {
    "server": lambda value: server_urls(_text_list(value)),
    "symbol": _symbol,
    "modes": lambda value: mode_list(_text_list(value)),
    "poll_interval": _poll_interval,
    "theme": _theme,
    "network": _network,
    "alerts": _alerts,
}
"""Every key the file may hold, and how its value is checked (as the matching flag checks it)."""


@dataclass(frozen=True, slots=True)
class Loaded:
    path: Path
    values: dict[str, Any]
    """The file's settings, checked and converted as their flags would be; only those it names."""


def load(path: Path | None) -> Loaded:
    """The settings in `path` (`--config`, which must exist), else in the default file if there is one."""
    where = path if path is not None else default_path()
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path is not None:
            raise ConfigError(f"config file {where} not found") from None
        return Loaded(where, {})
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {where}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        check = KEYS.get(key)
        if check is None:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        try:
            values[key] = check(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{where}: key {key!r}: {exc}") from None
    return Loaded(where, values)


def save(path: Path, settings: Mapping[str, Any]) -> None:
    """Write `settings` (keys of `KEYS`) to `path`, creating its folder; the file is replaced whole.
    Alerts may be given as rules or their text; they are written as text (`RELIANCE>1320`)."""
    unknown = set(settings) - set(KEYS)
    if unknown:
        raise ValueError(f"not config keys: {sorted(unknown)}")
    written = dict(settings)
    if "alerts" in written:
        try:
            written["alerts"] = [str(r if isinstance(r, AlertRule) else parse_rule(r)) for r in written["alerts"]]
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(tomli_w.dumps(written), encoding="utf-8")
    partial.replace(path)  # (atomic: a crash mid-write leaves the old file, not half a new one)
