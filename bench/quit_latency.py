"""How long q takes to end the app while a generation runs: key written -> process gone.

    python bench/quit_latency.py [--checkpoint P] [--runs 5] [--steps 1000]

Each run starts the real app (`python -m tui.cli`) in a pseudo-terminal at 80x24 (bench/tui_latency.py's
Terminal), switches to DDPM with --steps steps (16 items, the default), presses g, waits until the
app reports a step and a little more, writes q and times until the process has exited. The test
suite checks only that quitting stops the sampling thread (tests/tui/test_tui_app.py); how fast it
goes is measured here, on a machine that is otherwise idle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_latency import Terminal, pick_checkpoint  # noqa: E402


def one_quit(argv: list[str], steps: int) -> float:
    """Seconds from q written to the process gone, with a DDPM generation of `steps` steps under way."""
    term = Terminal(argv)
    term.wait_for("model ready", timeout=120)
    down = "\x1b[B"
    for keys, shown in (("s", "DDIM"), ("s", "DDPM"), (down, "more steps: slower"), (f"{steps}\r", None)):
        mark, _sent = term.send(keys)  # s moves the cursor to the sampler row; down to the steps row
        if shown:
            term.wait_for(shown, mark, timeout=10)
        term.pump(0.1)
    mark, _sent = term.send("g")
    term.wait_for("denoising: step", mark, timeout=30)
    settle = time.perf_counter() + 0.5  # well into the run: several steps taken, the next one under way
    while time.perf_counter() < settle:
        term.pump(0.01)
    _mark, sent = term.send("q")
    return term.wait_exit() - sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = pick_checkpoint(args.checkpoint, Path(folder))
        argv = [sys.executable, "-m", "tui.cli", "--checkpoint", checkpoint, "--export-dir", folder]
        times = [one_quit(argv, args.steps) for _ in range(args.runs)]
    print(f"checkpoint        {checkpoint}")
    print(f"q while sampling  median {1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} ms "
          f"(each: {', '.join(f'{1000 * t:.0f}' for t in times)} ms; DDPM {args.steps} steps, 16 items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
