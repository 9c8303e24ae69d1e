"""Messages the app's workers post with their results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from tui.alerts import Crossing

__all__ = ["AlertCrossed", "ServerStatsFetched"]


@dataclass
class ServerStatsFetched(Message):
    """A server's `/api/stats` answer (or why there was none). Only the newest of each server
    matters, so bursts collapse."""

    stats: dict[str, Any] | None
    error: str | None
    server_url: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ServerStatsFetched) and message.server_url == self.server_url


@dataclass
class AlertCrossed(Message):
    """A price alert fired on the market feed's thread; the app tells the user on its own."""

    crossing: Crossing
    at_start: bool = False
    """It fired on the first tick the app saw of its symbol: the line was crossed before the app
    started, and which pane got that tick first says only which connected first."""
