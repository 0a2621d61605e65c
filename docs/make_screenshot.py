"""Render docs/screenshot.svg: the generate screen at 100x30 as the app itself draws it.

    python docs/make_screenshot.py [--out docs/screenshot.svg]

Drives the real app (the shipped model) with key presses: sneaker and ankle boot picked 50/50,
the default settings, one generation; then Textual's own screenshot of the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def shoot(out: Path) -> None:
    from tui.app import AppOptions, FashionApp

    app = FashionApp(AppOptions(items=8))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        deadline = time.monotonic() + 120
        while screen.generator is None and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.press("space", *["down"] * 7, "space", "down", "down", "space", "g")  # sneaker + boot
        while (screen.result is None or screen.sampling is not None) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.svg"))
    asyncio.run(shoot(Path(parser.parse_args().out)))


if __name__ == "__main__":
    main()
