"""Number formatting shared by the panes, the comparison table and the bench."""

from __future__ import annotations

import math

__all__ = ["NO_VALUE", "fmt_age", "fmt_bytes", "fmt_count", "fmt_ms", "fmt_price", "fmt_ratio"]

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


def fmt_price(value: float) -> str:
    """Rupees with thousands separators: ₹1,312.45."""
    return f"\u20b9{value:,.2f}"


def fmt_age(seconds: float) -> str:
    """How long ago, briefly: 0.4 s, 12 s, 3 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
