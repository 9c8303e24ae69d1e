"""pushpull's bundled mini-server: a simulated NSE feed fanned out over poll, long poll, SSE and WebSocket."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
