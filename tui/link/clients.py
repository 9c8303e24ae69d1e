"""How a mode client goes through an emulated link: the app's panes and the bench make theirs alike."""

from __future__ import annotations

from typing import Any

from tui.link.relay import Link
from tui.modes.clock import relayed_clock

__all__ = ["through_link"]


def through_link(relays: Link | None, mode: str, server_url: str) -> tuple[str, dict[str, Any]]:
    """The URL a `mode` client should be given for `server_url`, and the options it needs on top:
    with `relays`, the relay's URL, a clock that trusts loopback only if the server itself is local,
    and for a webhook the relay the server is told to call in front of its receiver (released when
    the receiver closes). Without, the server's URL and nothing more."""
    if relays is None:
        return server_url, {}
    options: dict[str, Any] = {"clock": relayed_clock(server_url)}
    if mode == "webhook":
        options |= {"inbound": relays.through, "release": relays.release}
    return relays.through(server_url), options
