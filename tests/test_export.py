"""The export key (`tui.export`): the comparison on screen, to CSV and JSON, figure for figure."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

from tests.helpers import RunningServer, until
from tui.app import PushPullApp
from tui.export import COLUMNS
from tui.modes import ConnectionState
from tui.theory import poll_theory

WAIT = 20.0


def exported(folder: Path) -> tuple[Path, dict[str, Any], list[list[str]]]:
    """The one export in `folder`: its CSV's path, the JSON, the CSV's rows."""
    [json_path] = folder.glob("pushpull-*.json")
    [csv_path] = folder.glob("pushpull-*.csv")
    with csv_path.open() as rows:
        return csv_path, json.loads(json_path.read_text()), list(csv.reader(rows))


async def test_e_writes_every_panes_figures_and_theory_as_the_screen_has_them(
    shared_server: RunningServer, tmp_path: Path
) -> None:
    app = PushPullApp(shared_server.url, modes=["poll", "sse", "ws"], stats_interval=None, export_dir=tmp_path)
    async with asyncio.timeout(WAIT), app.run_test(size=(100, 30), notifications=True) as pilot:
        await until(lambda: all(p.client.stats.updates >= 1 for p in app.panes), pilot=pilot)
        await pilot.press("p")  # (paused: the figures hold still while they are compared)
        await until(lambda: all(p.client.state is ConnectionState.STOPPED for p in app.panes), pilot=pilot)
        await pilot.press("e")
        await until(lambda: len(list(tmp_path.glob("pushpull-*.csv"))) == 1, pilot=pilot)
        csv_path, data, table = exported(tmp_path)
        assert any(str(csv_path) in str(n.message) for n in app._notifications)
        assert [p["mode"] for p in data["panes"]] == ["poll", "sse", "ws"]
        for figures, pane in zip(data["panes"], app.panes, strict=True):
            stats = pane.client.stats
            assert (figures["updates"], figures["requests"], figures["wire_bytes"], figures["missed"]) == (
                stats.updates,
                stats.requests,
                stats.wire_bytes,
                stats.missed,
            )
            assert figures["server"] == shared_server.url and figures["state"] == "stopped"
        rate = app.theory_tick_rate(app.wall_clock())
    assert data["symbol"] == "RELIANCE" and data["poll_interval_s"] == app.poll_interval
    if rate:
        theory = poll_theory(rate, app.poll_interval)
        assert theory is not None
        assert data["poll_theory"]["requests_per_update"] == round(theory.requests_per_update, 6)
    assert table[0] == list(COLUMNS)
    assert [row[1] for row in table[1:4]] == ["poll", "sse", "ws"]
    assert [int(row[COLUMNS.index("updates")]) for row in table[1:4]] == [p["updates"] for p in data["panes"]]
