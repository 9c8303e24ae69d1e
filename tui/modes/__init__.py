"""The mode clients, one module each, behind one interface; `MODES` is the registry the app cycles.

Example:

    client = make_client("ws", "http://127.0.0.1:8000", "RELIANCE")
"""

from __future__ import annotations

from typing import Any

from tui.modes.base import Backoff, ConnectionState, Event, ModeClient, ModeError
from tui.modes.clock import ServerClock
from tui.modes.limits import LimitExceeded, Limits
from tui.modes.longpoll import LongPollClient
from tui.modes.poll import PollClient
from tui.modes.sse import SseClient
from tui.modes.stats import ModeStats
from tui.modes.webhook import WebhookClient
from tui.modes.ws import WsClient

__all__ = [
    "MODES",
    "Backoff",
    "ConnectionState",
    "Event",
    "LimitExceeded",
    "Limits",
    "LongPollClient",
    "ModeClient",
    "ModeError",
    "ModeStats",
    "PollClient",
    "ServerClock",
    "SseClient",
    "WebhookClient",
    "WsClient",
    "make_client",
]

MODES: dict[str, type[ModeClient]] = {
    client.mode: client
    for client in (
        PollClient,
        LongPollClient,
        SseClient,
        WsClient,
        WebhookClient,
    )
}
"""Every mode by its registry name, in the order the app cycles through them."""


def make_client(mode: str, server_url: str, symbol: str, **options: Any) -> ModeClient:
    """A client of `mode` (a key of `MODES`) for one symbol on one server."""
    try:
        client_class = MODES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}") from None
    return client_class(server_url, symbol, **options)
