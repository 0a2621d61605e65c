"""What a training writes into its run directory besides checkpoints (core.training.rundir names the files;
core.training.state writes the checkpoints): run.json's state, metrics.jsonl cut back to the step a
run restarts from (with quality.jsonl and the post-hoc EMA snapshots), and the per-epoch sample
grid. Only rank 0 calls these.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..classes import NUM_CLASSES
from ..files import atomic_write_bytes
from ..model.config import as_dict
from .posthoc_ema import PosthocEMA
from .rundir import METRICS, QUALITY, SAMPLE_SCALE
from .state import RunSetup


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes((json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), path)


def run_info(setup: RunSetup, state: str, steps_per_epoch: int, total_steps: int, **extra) -> dict:
    """What run.json says about a run now: its state ("running", "finished", "stopped", "failed"),
    where and how it trains, and extra (started, finished, error, ...)."""
    return {
        "state": state,
        "preset": setup.preset,
        "device": str(setup.device),
        "world_size": setup.world_size,
        "global_batch": setup.global_batch,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "epochs": setup.train_config.epochs,
        "model_config": as_dict(setup.model_config),
        "diffusion_config": as_dict(setup.diffusion_config),
        "train_config": as_dict(setup.train_config),
        "pid": os.getpid(),
        "updated": time.time(),
        **extra,
    }


def update_run_info(path: Path, fields: dict) -> None:
    """Merge fields into run.json, keeping what earlier writes put there (started, a resumed run's
    first start); an unreadable file starts over."""
    info = {}
    if path.exists():
        try:
            info = json.loads(path.read_text())
        except ValueError:
            info = {}
    info.update(fields)
    write_json(path, info)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines past the step we (re)start from: steps lost to a kill are logged again, once."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.splitlines()
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a half-written last line from a killed run
    if kept == lines and (not text or text.endswith("\n")):
        return  # nothing to drop: leave the file alone, so a monitor following it just sees appends
    atomic_write_bytes("".join(l + "\n" for l in kept).encode(), path)


def cut_back_to(run_dir: Path, step: int, posthoc: PosthocEMA) -> None:
    """Drop what the run directory holds past the step a run (re)starts from: the lines of
    metrics.jsonl and quality.jsonl, and the post-hoc EMA snapshots (a lost future: those steps
    are trained, logged and snapshotted again)."""
    truncate_metrics(run_dir / METRICS, step)
    truncate_metrics(run_dir / QUALITY, step)
    posthoc.forget_after(run_dir, step)


def draw_sample_grid(generator: ckpt.Generator, per_class: int, path: Path, text: dict, sampler: str = "ddim",
                     steps: int = 25) -> None:
    """One row of per_class images per class from a training's generator (its EMA weights; DDIM 25 at its
    default guidance unless told), written as a PNG x SAMPLE_SCALE with `text` in its text chunk.

    Each call's items draw from their own seeds (core.sampling.samplers), never the global RNG, so a grid
    leaves the training's stream of timesteps and noise where it was."""
    from ..images import make_grid, save_png, to_pil
    from ..sampling.request import SampleRequest
    from ..sampling.samplers import sample

    chunks = []  # each (5 * per_class, 1, 28, 28) in [-1, 1]
    for first in range(0, NUM_CLASSES, 5):  # 5 classes per call keeps n within the sampler's limit
        rows = [[1.0 if i == c else 0.0 for i in range(NUM_CLASSES)] for c in range(first, first + 5) for _ in range(per_class)]
        request = SampleRequest(rows[0], n=len(rows), sampler=sampler, steps=steps, seed=first, per_item_weights=rows)
        chunks.append(sample(generator, request))
    images = torch.cat(chunks)
    save_png(to_pil(make_grid(images, per_class), "grey", SAMPLE_SCALE), path, text)
