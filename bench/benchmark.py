"""Speed and memory figures for the default config. Prints a table; asserts nothing.

    python bench/benchmark.py [--checkpoint PATH] [--threads N] [--train-steps 20]

Figures: training images/s (default preset, batch 128, synthetic batches: the data path is a
tensor index), time to sample 16 guided items (DDIM 50, DDIM 25, DDPM 250), peak resident memory,
and import/start-up costs on the generation path.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_import(module: str) -> str:
    """Seconds to import `module` in a fresh interpreter, or why it could not be imported (a GPU
    box with only the core dependencies has no Textual, say): the other figures still print."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return f"n/a ({last})"
    return f"{float(out.stdout.strip()):.2f} s"


def main() -> None:
    from core.config import DEFAULT_PRESET

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from core.checkpoint import Generator, default_checkpoint, load_generator
    from core.config import PRESETS
    from core.diffusion import DiffusionObjective
    from core.model import Denoiser
    from core.sampling import SampleRequest, sample

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    preset = PRESETS[args.preset]
    model = Denoiser(preset.model, preset.diffusion).to(device)
    objective = DiffusionObjective(model, preset.diffusion)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(128, 1, 28, 28, device=device) * 2 - 1
    weights = torch.nn.functional.one_hot(torch.randint(0, 10, (128,)), 10).float().to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def train_step():
        with autocast:
            loss = objective(x, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.train_steps):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = 128 * args.train_steps / (time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    rows.append((f"train images/s ({args.preset}, {params / 1e6:.2f}M params, batch 128, {torch.get_num_threads()} threads)", f"{rate:.0f}"))

    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if path.exists():
        generator = load_generator(path, device)
        label = path.name
    else:
        model.eval()
        generator = Generator(model, preset.model, preset.diffusion, None, "random", {})
        label = "random weights"
    boot = [0.0] * 9 + [1.0]
    for sampler, steps in (("ddim", 50), ("ddim", 25), ("ddpm", 250)):
        sample(generator, SampleRequest(boot, n=16, sampler=sampler, steps=min(steps, 5)))  # warm-up
        start = time.perf_counter()
        sample(generator, SampleRequest(boot, n=16, sampler=sampler, steps=steps, guidance=2.0))
        rows.append((f"16 guided items, {sampler.upper()} {steps} ({label})", f"{time.perf_counter() - start:.2f} s"))
    rows.append(("peak resident memory (this process)", f"{peak_rss_mb():.0f} MB"))
    if device.type == "cuda":
        rows.append(("peak CUDA memory", f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MB"))
    rows.append(("import torch", time_import("torch")))
    rows.append(("import core.sampling (generation path, no torchvision)", time_import("core.sampling")))
    rows.append(("import tui.app (first frame path, no torch)", time_import("tui.app")))

    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
