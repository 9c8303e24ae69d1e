"""The comparison on screen, written to files: every pane's figures and what theory expects.

One JSON file (everything, nested) and one CSV (a row per pane, then polling's theory), named by
the time of the export, so that runs can be compared in a spreadsheet or a notebook later.

Example:

    json_path, csv_path = write_comparison(Path.cwd(), comparison(panes, symbol="TCS", ...))
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tui.modes import ModeClient
from tui.theory import mode_theory, poll_theory_over

__all__ = ["COLUMNS", "comparison", "pane_figures", "write_comparison"]

COLUMNS = (
    "pane", "mode", "server", "state", "delay_p50_ms", "delay_p95_ms", "updates", "missed", "missed_fraction",
    "replayed", "duplicates", "requests", "empty_responses", "requests_per_update", "wire_bytes",
    "wire_bytes_per_update", "payload_bytes", "connections", "reconnects", "gaps",
    "theory_delay_p50_ms", "theory_requests_per_update", "theory_missed_fraction",
)  # fmt: skip
"""The CSV's columns, in order; the JSON's panes have the same keys."""


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 3)


def pane_figures(number: int, client: ModeClient, server: str) -> dict[str, Any]:
    """One pane's figures as the screen shows them (delays over the pane's rolling window)."""
    stats = client.stats
    seen = stats.updates + stats.missed
    return {
        "pane": number,
        "mode": client.mode,
        "server": server,
        "state": client.state.value,
        "delay_p50_ms": _number(stats.delay_percentile(0.5)),
        "delay_p95_ms": _number(stats.delay_percentile(0.95)),
        "updates": stats.updates,
        "missed": stats.missed,
        "missed_fraction": round(stats.missed / seen, 4) if seen else None,
        "replayed": stats.replayed,
        "duplicates": stats.duplicates,
        "requests": stats.requests,
        "empty_responses": stats.empty_responses,
        "requests_per_update": _number(stats.requests_per_update),
        "wire_bytes": stats.wire_bytes,
        "wire_bytes_per_update": _number(stats.wire_bytes_per_update),
        "payload_bytes": stats.bytes_received,
        "connections": stats.open_connections,
        "reconnects": stats.reconnects,
        "gaps": stats.gaps,
    }


def comparison(
    panes: Sequence[tuple[ModeClient, str]],
    *,
    symbol: str,
    tick_rate: float | None,
    poll_interval: float,
    now: float | None = None,
    network: str | None = None,
    latency_s: float = 0.0,
) -> dict[str, Any]:
    """Everything the comparison shows: each (client, server) pane's figures with what theory
    expects of its mode over the link (`mode_theory`, one-way latency `latency_s`; `network` names
    the link), and polling's theory at the server at `tick_rate` (ticks/s) and `poll_interval` (s),
    when the rate is known."""
    theory = poll_theory_over(tick_rate, poll_interval, latency_s) if tick_rate else None
    rows = []
    for number, (client, server) in enumerate(panes, start=1):
        row = pane_figures(number, client, server)
        expected = (
            mode_theory(client.mode, tick_rate, interval=poll_interval, latency_s=latency_s) if tick_rate else None
        )
        delay = expected.delay_p50_s if expected is not None else None
        row["theory_delay_p50_ms"] = None if delay is None else round(delay * 1000, 3)
        row["theory_requests_per_update"] = None if expected is None else round(expected.requests_per_update, 4)
        row["theory_missed_fraction"] = None if expected is None else round(expected.missed_fraction, 4)
        rows.append(row)
    return {
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
        "symbol": symbol,
        "tick_rate": tick_rate,
        "poll_interval_s": poll_interval,
        "network": network,
        "latency_s": latency_s,
        "panes": rows,
        "poll_theory": {name: round(value, 6) for name, value in asdict(theory).items()} if theory else None,
    }


def write_comparison(folder: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write `data` as `pushpull-<time>.json` and `.csv` in `folder`; the two paths."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = folder / f"pushpull-{stamp}"
    for n in range(2, 100):  # (two exports in one second: don't overwrite the first)
        if not base.with_suffix(".json").exists():
            break
        base = folder / f"pushpull-{stamp}-{n}"
    json_path, csv_path = base.with_suffix(".json"), base.with_suffix(".csv")
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for pane in data["panes"]:
            writer.writerow(["" if pane[column] is None else pane[column] for column in COLUMNS])
        theory = data["poll_theory"]
        if theory is not None:
            writer.writerow([])
            writer.writerow(["theory: poll", "tick_rate", "poll_interval_s", *theory])
            writer.writerow(["", data["tick_rate"], data["poll_interval_s"], *theory.values()])
    return json_path, csv_path
