"""Garbage-collector settings for a server that holds thousands of connections.

CPython's cyclic collector runs its youngest generation every 700 net allocations, and each older
collection walks every tracked object, including the long-lived ones of every open connection and
of the imported libraries: at 1,000 long-poll clients it was about a third of the server's CPU.
Freezing what exists at start-up (modules, the app, schemas: never garbage) and collecting the
young generation every 20,000 allocations instead roughly halved the p99 delay there (the figures
are in docs/benchmarks.md).
Cyclic garbage simply lives a little longer; reference counting still frees everything else at once.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]

YOUNG_THRESHOLD = 20_000
OLDER_THRESHOLDS = (20, 20)


def tune_gc() -> None:
    """Call once the app is built, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
