"""Totals read from a server's `/api/stats`, shared by the server bar and the bench."""

from __future__ import annotations

from typing import Any

__all__ = ["held_connections", "requests_served"]


def _per_transport(stats: dict[str, Any], counter: str) -> int:
    transports: dict[str, dict[str, int]] = stats.get("transports", {})
    return sum(int(counters.get(counter, 0)) for counters in transports.values())


def held_connections(stats: dict[str, Any]) -> int:
    """Connections the server holds open now, every transport together."""
    return _per_transport(stats, "open_connections")


def requests_served(stats: dict[str, Any]) -> int:
    """Requests the server has answered since it started, every transport together."""
    return _per_transport(stats, "requests")
