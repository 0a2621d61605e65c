"""How responsive the monitor is while a run trains in the app: key-to-repaint of the chart keys.

    python bench/monitor_latency.py --data-dir ../shared/data [--presses 20] [--preset tiny]

Runs the real app in a pseudo-terminal at 80x24 (tui_latency.Terminal), starts a training with `t`
(`--train-preset`, a --limit-free epoch), waits for its first logged step, then presses `l` (the y
axis log <-> linear: the chart is drawn again) and `]`/`[` (smoothing: the chart and its legend)
and times each key until the new setting's words are written back; the same keys again in the
curves view (`v`, the chart at full height). Prints the latencies; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_latency import Terminal, describe  # noqa: E402


def latencies(term: Terminal, presses: int) -> list[float]:
    """Alternate `l` and `]`/`[`; each time the setting's new words must come back on the terminal."""
    out, log, smoothing = [], True, 0
    for index in range(presses):
        if index % 2 == 0:
            log = not log
            key, expect = "l", "log y" if log else "linear y"
        else:
            smoothing = 1 - smoothing
            key, expect = ("]", "smoothing 0.80") if smoothing else ("[", "smoothing 0.60")
        mark, sent = term.send(key)
        arrived = term.wait_for(expect, mark, timeout=10)
        out.append(1000 * (arrived - sent))
        pause_until = time.perf_counter() + random.uniform(0.1, 0.3)
        while time.perf_counter() < pause_until:
            term.pump(0.01)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        argv = [sys.executable, "-m", "tui.cli", "--data-dir", args.data_dir, "--train-preset", args.preset,
                "--train-epochs", "1", "--export-dir", folder, "--runs-root", folder]
        term = Terminal(argv)
        term.wait_for("CLASSES", timeout=60)
        mark, _ = term.send("m")
        term.wait_for("no run attached", mark)
        mark, _ = term.send("t")
        term.wait_for("step ", mark, timeout=300)  # the first logged step: the trainer is running
        rows = [("samples view (chart above the samples), while training", describe(latencies(term, args.presses)))]
        mark, _ = term.send("v")
        term.wait_for("view: curves", mark)
        rows.append(("curves view (chart at full height), while training", describe(latencies(term, args.presses))))
        term.send("x")
        time.sleep(1)
        term.send("q")
        term.wait_exit(60)
    width = max(len(name) for name, _ in rows)
    print(f"{'key-to-repaint of l and ] [ at 80x24':<{width}}  latency")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
