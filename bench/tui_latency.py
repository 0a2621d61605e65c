"""How responsive the app is: time to first frame, and key-to-repaint latency while a generation runs.

    python bench/tui_latency.py [--checkpoint P] [--presses 20] [--items 64] [--steps 1000] [--precision fp32]

Runs the real app (`python -m tui.cli`) in a pseudo-terminal at 80x24, as a user over SSH would,
and reads what it writes:
  first frame      process start -> the side panel's "CLASSES" title is on the terminal
  model ready      process start -> "model ready" (loaded in a background worker)
  generate         `g` at the default settings (the class picked at start, 16 items): the time the
                   app reports in "16 items in X s", median of --generations; beside it the same
                   request sampled in a plain process on every core (core.sampling.samplers.sample)
                   in fp32 and in bf16, each run after the same pause, and the app's median as a
                   multiple of the faster of the two
  live mode        `v`, then `]`/`[` alternately (each change starts a new run, cancelling the one in
                   flight): key -> "denoising" written back; then down/up arrows (the focused row's
                   hint) and `p` (every item redrawn) pressed during those runs
  key-to-repaint   `p` (next palette: every visible item is redrawn) written -> the new palette's
                   name written back; and arrow up/down (a light key) -> the focused row's hint
                   written back; measured idle, then while a DDPM generation (default 64 items
                   x 1000 steps) is running
  quit             `q` written -> the process has exited
Without --checkpoint it uses the shipped model if present, else a tiny untrained one.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import random
import re
import select
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PALETTES = ("grey", "inverted", "magma", "viridis", "ice")  # the order `p` cycles through
PAUSE = 0.3  # seconds between two generations, in the app and in the plain process alike


class Terminal:
    """The app in a pty; everything it writes is kept with the time it arrived."""

    def __init__(self, argv: list[str], width: int = 80, height: int = 24):
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # child: size the terminal, then become the app
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO))
            env.pop("COLORTERM", None)  # a 256-colour terminal, not truecolor
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        self.output = bytearray()
        self.exit_status: int | None = None

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            self.output += data

    def wait_for(self, text: str, start: int = 0, timeout: float = 60.0) -> float:
        """Seconds (perf_counter) when `text` first appears in the output after byte `start`."""
        needle = text.encode()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if needle in self.output[start:]:
                return time.perf_counter()
            self.pump(0.002)
        tail = re.sub(rb"\x1b\[[0-9;?<>=$]*[a-zA-Z]", b" ", bytes(self.output[-3000:])).decode(errors="replace")
        raise TimeoutError(f"{text!r} did not appear within {timeout:.0f} s; the app last wrote: {' '.join(tail.split())[-600:]}")

    def send(self, keys: str) -> tuple[int, float]:
        mark = len(self.output)
        os.write(self.fd, keys.encode())
        return mark, time.perf_counter()

    def wait_exit(self, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.pump(0.01)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = status
                return time.perf_counter()
        tail = re.sub(rb"\x1b\[[0-9;?<>=$]*[a-zA-Z]", b" ", bytes(self.output[-3000:])).decode(errors="replace")
        raise TimeoutError(f"the app did not exit; it last wrote: {' '.join(tail.split())[-600:]}")


def palette_latencies(term: Terminal, presses: int, state: dict, busy_until: str | None = None, since: int = 0) -> list[float]:
    """Press `p` repeatedly; each time, the next palette's name must come back on the terminal."""
    latencies = []
    for _ in range(presses):
        if busy_until and busy_until.encode() in term.output[since:]:
            break  # the generation finished: stop measuring "while sampling"
        state["palette"] = (state["palette"] + 1) % len(PALETTES)
        mark, sent = term.send("p")
        arrived = term.wait_for(PALETTES[state["palette"]], mark, timeout=10)
        latencies.append(1000 * (arrived - sent))
        pause_until = time.perf_counter() + random.uniform(0.05, 0.15)  # land at different points of a step
        while time.perf_counter() < pause_until:
            term.pump(0.01)
    return latencies


ROW_HINTS = {"\x1b[B": "dataset look", "\x1b[A": "type 1-64"}  # items row <-> palette row


def arrow_latencies(term: Terminal, presses: int, busy_until: str | None = None, since: int = 0) -> list[float]:
    """From the items row, alternate down and up; each time the new row's hint must come back."""
    latencies = []
    for index in range(presses):
        if busy_until and busy_until.encode() in term.output[since:]:
            break
        key = "\x1b[B" if index % 2 == 0 else "\x1b[A"
        mark, sent = term.send(key)
        arrived = term.wait_for(ROW_HINTS[key], mark, timeout=10)
        latencies.append(1000 * (arrived - sent))
        pause_until = time.perf_counter() + random.uniform(0.05, 0.15)
        while time.perf_counter() < pause_until:
            term.pump(0.01)
    return latencies


def describe(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):.0f} ms, p90 {p90:.0f} ms, max {ordered[-1]:.0f} ms (n={len(ordered)})"


def pick_checkpoint(path: str | None, folder: Path) -> str:
    if path:
        return path
    sys.path.insert(0, str(REPO))
    from core.checkpoint import default_checkpoint

    if default_checkpoint().exists():
        return str(default_checkpoint())
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_tiny_checkpoint

    return str(make_tiny_checkpoint(folder / "tiny.pt"))


IN_PROCESS = r"""
import statistics, sys, time
from core.cpu import prefer_passive_openmp
prefer_passive_openmp()
import torch
from core.checkpoint import open_generator
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
generator = open_generator(sys.argv[1] or None, "cpu")
runs, pause = int(sys.argv[2]), float(sys.argv[3])
seconds = {"fp32": [], "bf16": []}
for p in seconds:
    sample(generator, SampleRequest([1.0] + [0.0] * 9, n=16, precision=p))  # kernels built, as the app's load does
for i in range(runs):
    for p in seconds:
        time.sleep(pause)
        start = time.perf_counter()
        sample(generator, SampleRequest([1.0] + [0.0] * 9, n=16, seed=i, precision=p))
        seconds[p].append(time.perf_counter() - start)
print(statistics.median(seconds["fp32"]), statistics.median(seconds["bf16"]), torch.get_num_threads())
"""


def in_process(checkpoint: str, runs: int, pause: float) -> tuple[float, float, int]:
    """(median seconds in fp32, in bf16, threads) for the app's default request in a plain process."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", IN_PROCESS, checkpoint, str(runs), str(pause)], capture_output=True,
                         text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    fp32, bf16, threads = out.stdout.split()
    return float(fp32), float(bf16), int(threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--launches", type=int, default=3, help="first frame: median of this many starts")
    parser.add_argument("--precision", default="auto", help="the app's --precision (fp32 times it as it was)")
    parser.add_argument("--generations", type=int, default=5, help="g presses timed at the default settings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = pick_checkpoint(args.checkpoint, Path(folder))
        argv = [sys.executable, "-m", "tui.cli", "--checkpoint", checkpoint, "--export-dir", folder, "--precision", args.precision]
        first_frames = []
        for _ in range(args.launches - 1):
            term = Terminal(argv)
            first_frames.append(term.wait_for("CLASSES", timeout=30) - term.started)
            term.send("q")
            term.wait_exit()
        term = Terminal(argv)
        first_frames.append(term.wait_for("CLASSES", timeout=30) - term.started)
        first_frame = statistics.median(first_frames)
        model_ready = term.wait_for("model ready", timeout=120) - term.started
        settle = time.perf_counter() + 1.0  # let the palette tables arrive too
        while time.perf_counter() < settle:
            term.pump(0.01)
        state = {"palette": 0}
        idle = palette_latencies(term, 10, state)

        reported = []
        for _ in range(args.generations):
            mark, _sent = term.send("g")
            term.wait_for("items in", mark, timeout=60)
            found = re.search(rb"(\d+) items in ([\d.]+) s", bytes(term.output[mark:]))
            reported.append((int(found.group(1)), float(found.group(2))))
            term.pump(PAUSE)

        mark, _sent = term.send("v")
        term.wait_for("Live: ON", mark, timeout=10)
        restarts, live_palette, live_arrows = [], [], []
        for index in range(args.presses):
            mark, sent = term.send("]" if index % 2 == 0 else "[")  # the cursor goes to the guidance row
            restarts.append(1000 * (term.wait_for("denoising", mark, timeout=10) - sent))
            for key, hint in (("\x1b[B", "how classes combine"), ("\x1b[A", "0 = none")):
                mark, sent = term.send(key)
                live_arrows.append(1000 * (term.wait_for(hint, mark, timeout=10) - sent))
            live_palette += palette_latencies(term, 1, state)
        mark, _sent = term.send("v")
        term.wait_for("Live: off", mark, timeout=10)
        term.pump(1.0)  # the last live run finishes

        # a long generation: ] [ put the cursor on the guidance row; up + space adds boot; s s pick DDPM (and
        # move to the sampler row); then the steps and the item count are typed on their rows
        up, down = "\x1b[A", "\x1b[B"
        for keys, shown in (("]", None), ("[", None), (up, None), (" ", None), ("s", "DDIM"), ("s", "DDPM"),
                            (down, "more steps: slower"), (str(args.steps) + "\r", None), (down * 3, "type 1-64"),
                            (str(args.items) + "\r", None), ("g", None)):
            mark, _sent = term.send(keys)
            if shown:
                term.wait_for(shown, mark, timeout=10)
            term.pump(0.1)
        started = mark  # the g that started the long run
        term.wait_for("denoising: step", started, timeout=30)
        busy = palette_latencies(term, args.presses, state, busy_until="items in", since=started)
        term.send("\x1b[A")  # p moved the cursor to the palette row; back to the items row
        term.wait_for("type 1-64", len(term.output) - 1, timeout=10)
        busy_arrows = arrow_latencies(term, args.presses, busy_until="items in", since=started)
        still_sampling = b"items in" not in term.output[started:]
        mark, sent = term.send("\x1b")
        cancelled = term.wait_for("cancelled at step", mark, timeout=30) - sent if still_sampling else None
        mark, sent = term.send("q")
        quit_time = term.wait_exit() - sent
        plain_fp32, plain_bf16, threads = in_process(checkpoint, args.generations, PAUSE)

    print(f"checkpoint        {checkpoint}")
    print(f"first frame       {1000 * first_frame:.0f} ms after process start, median of {len(first_frames)} "
          f"(each: {', '.join(f'{1000 * t:.0f}' for t in first_frames)} ms; 80x24, 256 colours)")
    print(f"model ready       {model_ready:.2f} s after process start (background worker)")
    app_median = statistics.median(t for _, t in reported)
    print(f"generate          the app reports {', '.join(f'{n} items in {t:.2f} s' for n, t in reported)} "
          f"(default settings; median {app_median:.2f} s)")
    print(f"in-process        the same request in a plain process on {threads} threads: fp32 {plain_fp32:.2f} s, "
          f"bf16 {plain_bf16:.2f} s (medians of {args.generations}); the app takes "
          f"{app_median / min(plain_fp32, plain_bf16):.2f}x the faster")
    print(f"live mode         key -> new run shown:   {describe(restarts)}")
    print(f"key-to-repaint    p, live mode sampling:  {describe(live_palette)}")
    print(f"key-to-repaint    arrow, live mode:       {describe(live_arrows)}")
    print(f"key-to-repaint    p, idle:                {describe(idle)}")
    print(f"key-to-repaint    p, while sampling:      {describe(busy)}")
    print(f"key-to-repaint    arrow, while sampling:  {describe(busy_arrows)}")
    print(f"                  (sampling {args.items} items, DDPM {args.steps} steps"
          + (")" if still_sampling else "; the generation ended during the presses)"))
    if cancelled is not None:
        print(f"Esc to cancelled  {1000 * cancelled:.0f} ms")
    print(f"q to exit         {1000 * quit_time:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
