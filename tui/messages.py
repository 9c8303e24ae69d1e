"""Messages the app's workers post with their results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

__all__ = ["ServerStatsFetched"]


@dataclass
class ServerStatsFetched(Message):
    """A `/api/stats` answer (or why there was none). Only the newest matters, so bursts collapse."""

    stats: dict[str, Any] | None
    error: str | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ServerStatsFetched)
