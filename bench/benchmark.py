"""Speed and memory figures for the default config. Prints a table; asserts nothing.

    python bench/benchmark.py [--checkpoint PATH] [--threads N] [--train-steps 20]
    python bench/benchmark.py --write-seed-checkpoint PATH   # an untrained `seed` model, for timing the original way

Figures: which precision `auto` picks here for training and for sampling, timed afresh (as a first
run on this machine would; core.autotune); training images/s of the trainer's step (default
preset, batch 128, synthetic batches: the data path is a tensor index) in fp32 as it was (a loss
read per step, for-loop AdamW), fp32 and bf16, eager and compiled, side by side with their ratios,
and what `auto` picks against the fastest of them; 16 guided items with DPM-Solver++ 20 in fp32
and bf16 on all threads and on one, and auto's pick against the faster; DDIM 50 and DDPM 250 at
auto's precision; peak resident memory, and
each start-up cost of `fashion-tui generate`, measured in a fresh process: importing torch and
the generation path, reading the checkpoint, checking its shapes, building the model, hashing
the file, and the first sampling call; and the quality probe's seconds against an epoch's training
seconds at the measured rate (`--data-dir`: it needs the test split).
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


STARTUP = r"""
import json, sys, time
marks = [("start", time.perf_counter())]
def mark(name): marks.append((name, time.perf_counter()))
import torch; mark("import torch")
import core.sampling.samplers, core.sampling.recipes, core.checkpoint; mark("import the generation path (core)")
from core.checkpoint import build_denoiser, check_weights, default_checkpoint, file_hash, read_checkpoint
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
path = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else default_checkpoint()
data = read_checkpoint(path); mark("read the checkpoint (torch.load, weights only)")
check_weights(data, "ema", path); mark("check its shapes (meta-device model)")
denoiser, model_config, diffusion_config = build_denoiser(data, "ema", path); mark("build the model and load the weights")
file_hash(path); mark("hash the file")
from core.checkpoint import Generator
denoiser = denoiser.to(memory_format=torch.channels_last).eval()
generator = Generator(denoiser, model_config, diffusion_config, None, "", {})
sample(generator, SampleRequest([0.0] * 9 + [1.0], n=16, steps=2)); mark("first sampling call (2 steps, 16 items)")
print(json.dumps([(b[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]))
"""


def startup_components(checkpoint: str | None) -> list[tuple[str, str]]:
    import json

    out = subprocess.run([sys.executable, "-c", STARTUP, checkpoint or ""], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return [("start-up components", "n/a (" + (out.stderr.strip().splitlines() or ["failed"])[-1] + ")")]
    return [(f"start-up: {name}", f"{seconds:.2f} s") for name, seconds in json.loads(out.stdout.strip().splitlines()[-1])]


def train_rate(preset, device, precision: str, compiled: bool, before: bool, steps: int) -> tuple[float, float]:
    """(images/s of the trainer's step on synthetic batch-128 data, seconds spent compiling).

    before: the step as it was, for the ratio the targets are measured against: fp32, the loss
    read back after every step, and AdamW's default for-loop implementation."""
    import torch

    from core.model.config import TrainConfig
    from core.model.denoiser import Denoiser
    from core.model.diffusion import DiffusionObjective
    from core.training.step import LossTally, StepRunner, make_optimizer, update_ema

    torch.manual_seed(0)
    model = Denoiser(preset.model, preset.diffusion).to(device).train()
    ema = Denoiser(preset.model, preset.diffusion).to(device).eval().requires_grad_(False)
    objective = DiffusionObjective(model, preset.diffusion).to(device)
    optimizer = (torch.optim.AdamW(model.parameters(), 1e-3, foreach=False) if before
                 else make_optimizer(model, 1e-3, 0.0))
    runner = StepRunner(objective, TrainConfig(batch_size=128, compile=compiled), precision, device,
                        notice=print, images_to_train=10**9)
    tally = LossTally(device, None)
    x = torch.rand(128, 1, 28, 28, device=device) * 2 - 1
    weights = torch.nn.functional.one_hot(torch.randint(0, 10, (128,)), 10).float().to(device)
    parameters = list(model.parameters())

    def train_step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = runner((x, weights), parameters)
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        update_ema(ema, model, 0.999)
        if before:
            float(loss)
        else:
            tally.add(loss, grad_norm, i)

    start = time.perf_counter()
    for i in range(3):
        train_step(i)
    compile_seconds = time.perf_counter() - start
    packed = tally.packed().tolist()  # the read a log record makes
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        train_step(i)
    packed = tally.packed().tolist()
    del packed
    return 128 * steps / (time.perf_counter() - start), compile_seconds


def probe_cost(generator, device, rate: float, data_dir: str | None) -> tuple[str, str]:
    """The quality probe at the end of an epoch (core.evaluation.probe, auto items for a full epoch)
    against the training seconds of a 60,000-image epoch at `rate` images/s."""
    from core.evaluation.probe import QualityProbe, auto_per_class

    probe = QualityProbe(data_dir, auto_per_class(60_000))
    start = time.perf_counter()
    off = probe.prepare(device)
    if off:
        return "quality probe", f"n/a ({off})"
    prepare = time.perf_counter() - start
    start = time.perf_counter()
    record = probe.score(generator, device)
    seconds, epoch = time.perf_counter() - start, 60_000 / rate
    return (f"quality probe per epoch ({record['items']} items, DPM {record['steps']}, {record['precision']})",
            f"{seconds:.1f} s = {100 * seconds / epoch:.1f}% of an epoch ({epoch:.0f} s at {rate:.0f} images/s); "
            f"accuracy {100 * record['accuracy']:.1f}%, KID {record['kid']:.4f}; loading the test split once: {prepare:.1f} s")


def write_seed_checkpoint(path: str) -> None:
    """An untrained `seed`-preset generator: the original design's model size, for timing it."""
    import torch

    from core.checkpoint import FORMAT_VERSION, KIND, atomic_save, config_dicts, model_state
    from core.model.config import PRESETS
    from core.model.denoiser import Denoiser

    preset = PRESETS["seed"]
    torch.manual_seed(0)
    denoiser = Denoiser(preset.model, preset.diffusion)
    atomic_save({"kind": KIND, "format_version": FORMAT_VERSION, "preset": "seed", **config_dicts(preset.model, preset.diffusion),
                 "ema": model_state(denoiser), "step": 0, "epoch": 0}, path)
    print(f"wrote {path} (untrained seed preset)")


def main() -> None:
    from core.model.config import DEFAULT_PRESET

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--guide", default=None, help="autoguidance guide (default: NAME-guide.pt beside the checkpoint)")
    parser.add_argument("--student", default=None, help="the student (default: NAME-student.pt beside the checkpoint)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-seed-checkpoint", default=None, metavar="PATH")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST, for the quality probe's row")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the compiled training row (compiling takes a minute or two on a CPU)")
    args = parser.parse_args()
    if args.write_seed_checkpoint:
        write_seed_checkpoint(args.write_seed_checkpoint)
        return

    import torch

    import os
    import tempfile

    from core import autotune
    from core.checkpoint import Generator, default_checkpoint, open_generator
    from core.device import resolve_precision
    from core.model.config import PRESETS, as_dict
    from core.model.denoiser import Denoiser
    from core.sampling.limits import DEFAULT_STEPS
    from core.sampling.request import SampleRequest
    from core.model.diffusion import DiffusionObjective
    from core.sampling.samplers import sample, sampling_precision
    from core.training.step import step_timer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.environ[autotune.CACHE_ENV] = tempfile.mkdtemp(prefix="bench-cache-")  # time afresh; the user's cache untouched
    preset = PRESETS[args.preset]
    model = Denoiser(preset.model, preset.diffusion).to(device)
    params = sum(p.numel() for p in model.parameters())
    objective = DiffusionObjective(model, preset.diffusion).to(device)
    work = {"model": as_dict(preset.model), "diffusion": as_dict(preset.diffusion), "batch": 128}
    precision, why = resolve_precision("auto", device, lambda: autotune.measured_precision(
        "training", work, step_timer(objective, (torch.rand(128, 1, 28, 28, device=device) * 2 - 1,
                                                  torch.eye(10, device=device)[torch.arange(128, device=device) % 10]), device)))
    rows = [("training precision auto chooses here", f"{precision} ({why})")]
    modes = [("fp32", False, True), ("fp32", False, False), ("bf16", False, False)]
    modes += [("fp32", True, False), ("bf16", True, False)] if args.compile else []
    rates = {}
    for mode in modes:
        rate, compile_seconds = train_rate(preset, device, *mode, steps=args.train_steps)
        rates[mode] = rate
        name = f"{mode[0]}, {'compiled' if mode[1] else 'eager'}" + (", before: a loss read per step, for-loop AdamW" if mode[2] else "")
        extra = f" (compiling took {compile_seconds:.0f} s)" if mode[1] else ""
        rows.append((f"train images/s ({args.preset}, {params / 1e6:.2f}M params, batch 128, {torch.get_num_threads()} threads): {name}",
                     f"{rate:.0f} = {rate / rates[modes[0]]:.2f}x{extra}"))
    # what a long run's `auto` ends up with: the measured precision, compiled where that measured faster
    compiled_rate = rates.get((precision, True, False), 0.0)
    auto_rate = max(rates[(precision, False, False)], compiled_rate)
    best = max((rate, mode) for mode, rate in rates.items() if not mode[2])
    auto_compiled = "compiled" if compiled_rate > rates[(precision, False, False)] * 1.03 else "eager"
    rows.append(("train: auto's pick for a long run (precision measured, compile kept where faster)",
                 f"{precision} {auto_compiled}: {auto_rate:.0f} images/s = {auto_rate / best[0]:.2f}x the fastest "
                 f"({best[1][0]} {'compiled' if best[1][1] else 'eager'}, {best[0]:.0f})"))

    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if path.exists():
        generator = open_generator(path, device, args.guide, student=args.student)
        label = path.name
    else:
        model.eval()
        generator = Generator(model, preset.model, preset.diffusion, None, "random", {})
        label = "random weights"
    sample_precision, sample_why = sampling_precision(generator, "auto", device)
    rows.append(("sampling precision auto chooses here", f"{sample_precision} ({sample_why})"))
    precision = sample_precision
    boot = [0.0] * 9 + [1.0]
    threads = torch.get_num_threads()
    for count in sorted({threads, 1}, reverse=True):  # the default sampler in each precision, alternating
        torch.set_num_threads(count)
        timings = {"fp32": [], "bf16": []}
        for p in timings:
            sample(generator, SampleRequest(boot, n=16, steps=3, precision=p))  # warm-up
        for _ in range(5):
            for p in timings:
                start = time.perf_counter()
                sample(generator, SampleRequest(boot, n=16, precision=p))
                timings[p].append(time.perf_counter() - start)
        fp32, bf16 = (sorted(timings[p])[2] for p in timings)
        picked = {"fp32": fp32, "bf16": bf16}[sample_precision]
        rows.append((f"16 items, DPM {DEFAULT_STEPS['dpm']}, default guidance ({label}, {count} thread{'s' * (count > 1)})",
                     f"fp32 {fp32:.2f} s, bf16 {bf16:.2f} s: {fp32 / bf16:.2f}x (medians of 5, alternating); "
                     f"auto ({sample_precision}) takes {picked / min(fp32, bf16):.2f}x the faster's time"))
    torch.set_num_threads(threads)
    for sampler in ("ddim", "ddpm"):
        steps = DEFAULT_STEPS[sampler]
        sample(generator, SampleRequest(boot, n=16, sampler=sampler, steps=3))  # warm-up
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            sample(generator, SampleRequest(boot, n=16, sampler=sampler, steps=steps))
            runs.append(time.perf_counter() - start)
        rows.append((f"16 items, {sampler.upper()} {steps}, default guidance ({label}, {threads} threads, {precision})",
                     f"{sorted(runs)[1]:.2f} s (median of 3)"))
    torch.set_num_threads(threads)
    if generator.guide is not None:  # what autoguidance adds at the default settings, alternating A/B
        from core.sampling.limits import AUTOGUIDANCE_ON

        timings = {0.0: [], AUTOGUIDANCE_ON: []}
        for _ in range(5):
            for w in timings:
                start = time.perf_counter()
                sample(generator, SampleRequest(boot, n=16, autoguidance=w))
                timings[w].append(time.perf_counter() - start)
        plain, auto = (sorted(timings[w])[2] for w in timings)
        guide = generator.guide
        rows.append((f"16 items, default, autoguidance {AUTOGUIDANCE_ON:g} ({guide.path.name}, "
                     f"{sum(p.numel() for p in guide.denoiser.parameters()) / 1e6:.2f}M params)",
                     f"{auto:.2f} s against {plain:.2f} s without: {auto / plain:.2f}x (medians of 5, alternating)"))
    if generator.student is not None:  # the student's default against the teacher's, alternating A/B
        from core.sampling.limits import DEFAULT_SAMPLER, STUDENT

        timings = {"teacher": [], STUDENT: []}
        for sampler in timings:
            sample(generator, SampleRequest(boot, n=16, sampler=DEFAULT_SAMPLER if sampler == "teacher" else sampler))  # warm-up
        for _ in range(7):
            for sampler in timings:
                start = time.perf_counter()
                sample(generator, SampleRequest(boot, n=16, sampler=DEFAULT_SAMPLER if sampler == "teacher" else sampler))
                timings[sampler].append(time.perf_counter() - start)
        teacher, student = (sorted(timings[k])[3] for k in timings)
        rows.append((f"16 items, the student's default ({DEFAULT_STEPS[STUDENT]} steps, {generator.student.path.name}) "
                     f"against the teacher's (DPM {DEFAULT_STEPS['dpm']}, {precision})",
                     f"{student:.3f} s against {teacher:.3f} s: {student / teacher:.3f}x (medians of 7, alternating)"))
    rows.append(probe_cost(generator, device, max(r for m, r in rates.items() if m[0] == precision and not m[2]),
                           args.data_dir))
    rows.append(("peak resident memory (this process)", f"{peak_rss_mb():.0f} MB"))
    if device.type == "cuda":
        rows.append(("peak CUDA memory", f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MB"))
    rows.append(("import torch", time_import("torch")))
    rows.append(("import core.sampling.samplers (generation path, no torchvision)", time_import("core.sampling.samplers")))
    rows.append(("import tui.app (first frame path, no torch)", time_import("tui.app")))
    rows += startup_components(args.checkpoint)

    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
