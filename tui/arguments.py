"""Argument types `pushpull-tui` and `pushpull-bench` share (the generic ones are in `server.commandline`)."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from tui.defaults import MAX_PANES

__all__ = ["mode_list", "server_url"]


def server_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"invalid server URL {text!r}: expected http://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in server URL {text!r}") from None
    return text.rstrip("/")


def mode_list(text: str) -> list[str]:
    from tui.modes import MODES

    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(MODES)}"
        )
    if len(modes) > MAX_PANES:
        raise argparse.ArgumentTypeError(f"{len(modes)} panes asked for; at most {MAX_PANES}")
    return modes
