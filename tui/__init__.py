"""pushpull's terminal app, its mode clients and the headless bench. Talks to the server only over the wire."""

from __future__ import annotations

from server import __version__

__all__ = ["__version__"]
