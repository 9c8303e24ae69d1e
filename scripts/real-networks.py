"""The record of issue 15: every mode over `lan`, `4g` and `satellite` at 2 and 20 ticks/s, measured
by `pushpull-bench` (its bundled server, loopback only) against theory, as a Markdown table.

    .venv/bin/python scripts/real-networks.py [--duration 20] [--clients 15] [--out DIR]

Each run is one `pushpull-bench --network NAME --tick-rate R --json FILE`; the JSON files stay in
`--out` (default /tmp/real-networks) and the table goes to stdout, for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

NETWORKS = ("lan", "4g", "satellite")
RATES = (2.0, 20.0)


def cell(value: float | None, digits: int = 0) -> str:
    return "\u2013" if value is None else f"{value:,.{digits}f}"


def rows(report: dict[str, Any], network: str, rate: float) -> list[str]:
    lines = []
    for mode, figures in report["modes"].items():
        theory = figures["theory"] or {}
        seen = figures["updates"] + figures["missed"]
        missed = 100 * figures["missed"] / seen if seen else None
        theory_missed = theory.get("missed_fraction")
        lines.append(
            f"| {network} | {rate:g} | {mode} "
            f"| {cell(figures['delay_ms']['p50'])} / {cell(theory.get('delay_ms_p50'))} "
            f"| {cell(figures['delay_ms']['p99'])} / {cell(theory.get('delay_ms_p99'))} "
            f"| {cell(figures['requests_per_update'], 2)} / {cell(theory.get('requests_per_update'), 2)} "
            f"| {cell(figures['wire_bytes_per_update'])} "
            f"| {cell(missed, 1)} / {cell(None if theory_missed is None else 100 * theory_missed, 1)} "
            f"| {theory.get('note', '')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("/tmp/real-networks"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = [
        "| link | ticks/s | mode | delay p50 ms | delay p99 ms | requests / update | wire bytes / update "
        "| missed % | what dominates (theory) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for network in NETWORKS:
        for rate in RATES:
            out = args.out / f"{network}-{rate:g}.json"
            print(f"{network} at {rate:g} ticks/s ...", file=sys.stderr)
            subprocess.run(
                [sys.executable, "-m", "tui.bench", "--network", network, "--tick-rate", f"{rate:g}",
                 "--duration", f"{args.duration:g}", "--clients", str(args.clients), "--seed", "1",
                 "--json", str(out)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            table += rows(json.loads(out.read_text()), network, rate)
    print("\n".join(table))


if __name__ == "__main__":
    main()
