"""Number (and server name) formatting shared by the panes, the comparison table and the bench."""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = [
    "NO_VALUE",
    "fmt_age",
    "fmt_bytes",
    "fmt_change",
    "fmt_count",
    "fmt_ms",
    "fmt_percent",
    "fmt_price",
    "fmt_rate",
    "fmt_ratio",
    "server_labels",
    "sparkline",
]

NO_VALUE = "\u2013"
"""An en dash: shown before there is anything to measure."""


def fmt_ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return NO_VALUE
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f} s"
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"


def fmt_bytes(value: float | None) -> str:
    if value is None or math.isnan(value):
        return NO_VALUE
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_count(value: int) -> str:
    return f"{value:,}"


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return NO_VALUE
    return f"{value:.2f}"


def fmt_price(value: float | None) -> str:
    """Rupees to the paisa, international grouping: `₹1,312.45`."""
    if value is None or math.isnan(value):
        return NO_VALUE
    return f"\u20b9{value:,.2f}"


def fmt_change(value: float) -> str:
    """A signed price change: `+1.20`, `-1,005.05`."""
    return f"{value:+,.2f}"


def fmt_percent(fraction: float | None) -> str:
    """A fraction as a percentage: `60.0%`, `0.0%`, `100%` (no decimals where they cannot fit)."""
    if fraction is None or math.isnan(fraction):
        return NO_VALUE
    percent = fraction * 100
    return f"{percent:.0f}%" if percent >= 99.95 else f"{percent:.1f}%"


def fmt_age(seconds: float) -> str:
    """How long ago, briefly: 0.4 s, 12 s, 3 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def fmt_rate(value: float) -> str:
    """Ticks per second to three significant figures (a measured rate is 2.52, not 2.51899)."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{float(f'{value:.3g}'):g}"


SERVER_LABEL_WIDTH = 16
"""Cells at most for a server's short name (a long host name is cut)."""


def server_labels(urls: Sequence[str]) -> list[str]:
    """Short names that tell `urls` apart, in order: `:8101` when they differ only by port, the host
    when only by host, else host:port."""
    places = [urlsplit(url) for url in urls]
    hosts = [place.hostname or "" for place in places]
    ports = [place.port or (443 if place.scheme == "https" else 80) for place in places]
    if len(set(hosts)) == 1:
        labels = [f":{port}" for port in ports]
    elif len(set(ports)) == 1:
        labels = hosts
    else:
        labels = [f"{host}:{port}" for host, port in zip(hosts, ports, strict=True)]
    width = SERVER_LABEL_WIDTH
    return [label if len(label) <= width else label[: width - 1] + "\u2026" for label in labels]


SPARKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
"""Eighth blocks, lowest to highest."""


def sparkline(values: Sequence[float]) -> str:
    """One cell per value, scaled from the lowest to the highest of them (flat: the middle)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        return SPARKS[3] * len(values)
    top = len(SPARKS) - 1
    return "".join(SPARKS[round((value - low) / (high - low) * top)] for value in values)
