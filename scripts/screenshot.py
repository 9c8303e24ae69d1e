"""Export the README's picture: the app itself, beside the bundled server, saved as SVG.

python scripts/screenshot.py [docs/screenshot.svg] [seconds]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui.app import PushPullApp
from tui.embedded import EmbeddedServer


async def main(path: Path, seconds: float) -> None:
    with EmbeddedServer(["--tick-rate", "2", "--seed", "42"]) as url:
        app = PushPullApp(url, embedded=True)
        async with app.run_test(size=(150, 44)) as pilot:
            await pilot.pause(seconds)
            app.save_screenshot(filename=path.name, path=str(path.parent))
    print(f"saved {path}")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.svg")
    asyncio.run(main(target, float(sys.argv[2]) if len(sys.argv) > 2 else 20.0))
