"""Export pictures of the app itself, beside the bundled server, as SVG (one per terminal size).

python scripts/screenshot.py [DIR] [SECONDS] [COLSxROWS ...]   (default: docs 20 80x24 160x45)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui.app import PushPullApp
from tui.embedded import EmbeddedServer


async def shoot(url: str, folder: Path, seconds: float, size: tuple[int, int]) -> Path:
    app = PushPullApp(url, embedded=True)
    path = folder / f"screenshot-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await pilot.pause(seconds)
        app.save_screenshot(filename=path.name, path=str(folder))
    return path


async def main(folder: Path, seconds: float, sizes: list[tuple[int, int]]) -> None:
    with EmbeddedServer(["--seed", "42"]) as url:
        for size in sizes:
            print(f"saved {await shoot(url, folder, seconds, size)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    target = Path(args[0] if args else "docs")
    wait = float(args[1]) if len(args) > 1 else 20.0
    shapes = [tuple(int(n) for n in s.split("x")) for s in args[2:]] or [(80, 24), (160, 45)]
    asyncio.run(main(target, wait, [(w, h) for w, h in shapes]))
