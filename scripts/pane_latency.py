"""Do the app's panes keep up? Pane delay vs a headless client, both at the same tick rate.

    python scripts/pane_latency.py [TICKS_PER_SECOND] [SECONDS]

Starts the bundled server (one symbol), runs the app headless with its four default panes and,
in a separate process, a headless SSE and WebSocket client on the same feed. Prints delay
percentiles of each (ms) and whether any pane fell behind (missed ticks a push mode must not miss).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tui.app import PushPullApp
from tui.embedded import EmbeddedServer
from tui.modes.stats import percentile

HEADLESS = """
import asyncio, json, sys
from tui.modes import make_client
from tui.modes.stats import percentile
async def main(url, seconds):
    clients = [make_client(m, url, "RELIANCE", keep_all_delays=True) for m in ("sse", "ws")]
    tasks = [asyncio.create_task(c.run()) for c in clients]
    await asyncio.sleep(seconds)
    for c in clients: await c.stop()
    await asyncio.gather(*tasks)
    print(json.dumps({c.mode: summary(c) for c in clients}))
def summary(c):
    d = sorted(c.stats.all_delays_ms[-500:])
    return {"p50": percentile(d, .5), "p95": percentile(d, .95), "p99": percentile(d, .99),
            "updates": c.stats.updates, "missed": c.stats.missed}
asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def summary(delays: list[float], updates: int, missed: int) -> dict[str, float]:
    d = sorted(delays)
    return {
        "p50": percentile(d, 0.5),
        "p95": percentile(d, 0.95),
        "p99": percentile(d, 0.99),
        "updates": updates,
        "missed": missed,
    }


async def main(rate: float, seconds: float) -> None:
    with EmbeddedServer(["--tick-rate", f"{rate:g}", "--symbols", "RELIANCE", "--seed", "1"]) as url:
        headless = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured run
            [sys.executable, "-c", HEADLESS, url, str(seconds)], stdout=subprocess.PIPE, text=True
        )
        app = PushPullApp(url, poll_interval=1.0)
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(seconds)
            panes = {
                p.mode: summary(list(p.client.stats.delays_ms), p.client.stats.updates, p.client.stats.missed)
                for p in app.panes
            }
        out, _ = headless.communicate(timeout=60)
    reference = json.loads(out)
    print(f"{rate:g} ticks/s for {seconds:g} s; delays over the last 500 ticks of each client (ms)")
    print(f"{'client':18} {'p50':>7} {'p95':>7} {'p99':>7} {'updates':>8} {'missed':>7}")
    for name, row in [
        *((f"pane {m}", r) for m, r in panes.items()),
        *((f"headless {m}", r) for m, r in reference.items()),
    ]:
        print(f"{name:18} {row['p50']:7.1f} {row['p95']:7.1f} {row['p99']:7.1f} {row['updates']:8d} {row['missed']:7d}")


if __name__ == "__main__":
    asyncio.run(
        main(float(sys.argv[1]) if len(sys.argv) > 1 else 200.0, float(sys.argv[2]) if len(sys.argv) > 2 else 15.0)
    )
