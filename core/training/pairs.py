"""A student's training pairs (core.training.distill): its teacher's items, each from known noise.

    pair j   x_T        item noise of seed PAIR_SEED_BASE + j (core.sampling.samplers.ItemNoise, as
                        every sampler draws an item's noise), kept as its seed
             classes    a single class (SINGLE_SHARE of the pairs) or two classes, the first's share
                        uniform in MIX_SHARE_RANGE
             g          uniform over STUDENT_GUIDANCE_RANGE for half the pairs, uniform within
                        NEAR_DEFAULT of the default guidance for the other half
             x0*        the teacher's item: its default sampler (DPM-Solver++ 20, guidance on
                        21 <= t <= 400, mixes composed) at that g, clamped to [-1, 1]

The draws of shard k come from a generator seeded with PAIR_SEED_BASE + k, so a pair is a function
of its teacher and its index alone: a resumed run, another rank or another run draws the same one.

    RUN_DIR/pairs/shard-00012.pt   {"kind": "fashion-distill-pairs", "format_version": 1,
                                    "teacher_hash", "shard", "seeds" (N,) int64, "x0" (N,1,28,28) fp16,
                                    "class_weights" (N,10), "guidance" (N,)}

Shards are written atomically (core.checkpoint.atomic_save) and read with the one checkpoint
reader; under torchrun rank r draws shards r, r+W, ..., and a shard that is missing when a rank
loads the pairs (a killed run, a run directory not shared between machines) is drawn again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import checkpoint as ckpt
from ..classes import DEFAULT_MIX, NUM_CLASSES
from ..sampling.limits import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SAMPLER, DEFAULT_STEPS, STUDENT_GUIDANCE_RANGE
from ..sampling.request import SampleRequest
from ..sampling.samplers import ItemNoise, sample
from .rundir import PAIRS
from .state import TrainingError

KIND = "fashion-distill-pairs"
FORMAT_VERSION = 1
# Pair seeds start far above the evaluator's and the quality probe's (seed + c * 1,000,000 + i), so a
# student is never scored on the noise of a pair it learned.
PAIR_SEED_BASE = 1_000_000_000
SINGLE_SHARE = 0.6  # pairs of one class; the rest mix two
MIX_SHARE_RANGE = (0.2, 0.8)  # the first class's share in a two-class mix
NEAR_DEFAULT = 0.5  # half the pairs draw g within this of the default guidance, where most items are asked for
DRAW_BATCH = 256  # items the teacher samples at once (each keeps its own noise: only speed changes)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.pt"


def shard_path(run_dir: str | os.PathLike, index: int) -> Path:
    return Path(run_dir) / PAIRS / shard_name(index)


def shard_sizes(pairs: int, shard_size: int) -> list[int]:
    """The pairs in each shard: full shards, the last one holding what is left."""
    return [min(shard_size, pairs - start) for start in range(0, pairs, shard_size)]


def draw_conditions(shard: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The class weights (count, 10) and guidance (count,) of shard `shard`'s pairs."""
    generator = torch.Generator().manual_seed(PAIR_SEED_BASE + shard)
    uniform = lambda *shape: torch.rand(shape, generator=generator, dtype=torch.float64)
    first = torch.randint(NUM_CLASSES, (count,), generator=generator)
    # the second class: any other class, uniformly
    second = (first + torch.randint(1, NUM_CLASSES, (count,), generator=generator)) % NUM_CLASSES
    lo, hi = MIX_SHARE_RANGE
    share = torch.where(uniform(count) < SINGLE_SHARE, torch.ones(count, dtype=torch.float64), lo + (hi - lo) * uniform(count))
    weights = torch.zeros(count, NUM_CLASSES, dtype=torch.float64)
    rows = torch.arange(count)
    weights[rows, first] = share
    weights[rows, second] += 1 - share
    g_lo, g_hi = STUDENT_GUIDANCE_RANGE
    default = DEFAULT_GUIDANCE[DEFAULT_SAMPLER]
    near = (default - NEAR_DEFAULT + 2 * NEAR_DEFAULT * uniform(count)).clamp(g_lo, g_hi)
    guidance = torch.where(uniform(count) < 0.5, g_lo + (g_hi - g_lo) * uniform(count), near)
    return weights.float(), guidance.float()


def draw_shard(teacher: ckpt.Generator, shard: int, first_pair: int, count: int, precision: str = "auto",
               device: torch.device | None = None) -> dict:
    """Shard `shard`: pairs first_pair .. first_pair + count - 1 drawn by the teacher (the file's dict)."""
    weights, guidance = draw_conditions(shard, count)
    items = []
    for start in range(0, count, DRAW_BATCH):
        rows = weights[start:start + DRAW_BATCH]
        request = SampleRequest(rows[0].tolist(), n=len(rows), sampler=DEFAULT_SAMPLER, seed=PAIR_SEED_BASE + first_pair + start,
                                guidance=DEFAULT_GUIDANCE[DEFAULT_SAMPLER], guidance_interval=DEFAULT_GUIDANCE_INTERVAL,
                                per_item_weights=rows.tolist(), mix=DEFAULT_MIX, black_level=0, precision=precision)
        items.append(sample(teacher, request, device, max_items=DRAW_BATCH, item_guidance=guidance[start:start + DRAW_BATCH]))
    return {"kind": KIND, "format_version": FORMAT_VERSION, "teacher_hash": teacher.hash, "shard": shard,
            "sampler": DEFAULT_SAMPLER, "steps": DEFAULT_STEPS[DEFAULT_SAMPLER], "mix": DEFAULT_MIX,
            "seeds": torch.arange(count, dtype=torch.long) + PAIR_SEED_BASE + first_pair,
            "x0": torch.cat(items).half(), "class_weights": weights, "guidance": guidance}


def read_shard(path: Path, teacher_hash: str, count: int) -> dict | None:
    """The shard at `path`, or None where there is none to read (missing or unreadable: drawn again);
    TrainingError (one line) for a shard of another teacher or size, which drawing again would hide."""
    if not path.is_file():
        return None
    try:
        data = ckpt.read_checkpoint(path, KIND, FORMAT_VERSION)
        found = len(data["seeds"])
    except (ckpt.CheckpointError, KeyError, TypeError):
        return None
    if data.get("teacher_hash") != teacher_hash:
        raise TrainingError(f"{path} holds pairs of teacher {data.get('teacher_hash')}, this run's teacher is {teacher_hash}: "
                            f"pick a new --run-dir")
    if found != count:
        raise TrainingError(f"{path} holds {found} pairs where this run expects {count}: pick a new --run-dir, "
                            f"or give the --pairs it was started with")
    return data


def draw_missing(run_dir: str | os.PathLike, teacher: ckpt.Generator, pairs: int, shard_size: int, precision: str = "auto",
                 device: torch.device | None = None, shards: range | None = None,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Draw and write the shards (all, or those in `shards`) that are missing; the number drawn.
    progress(pairs drawn, pairs to draw) after each shard."""
    sizes = shard_sizes(pairs, shard_size)
    todo = [k for k in (shards if shards is not None else range(len(sizes))) if k < len(sizes)
            and read_shard(shard_path(run_dir, k), teacher.hash, sizes[k]) is None]
    total, done = sum(sizes[k] for k in todo), 0
    for k in todo:
        ckpt.atomic_save(draw_shard(teacher, k, k * shard_size, sizes[k], precision, device), shard_path(run_dir, k))
        done += sizes[k]
        if progress is not None:
            progress(done, total)
    return len(todo)


@dataclass
class TeacherPairs:
    """Every pair of a run, as the training batches them (core.data.DeviceBatches)."""

    x_T: torch.Tensor  # (N, 1, 28, 28) float32: the noise each item started from
    x0: torch.Tensor  # (N, 1, 28, 28) float16: the teacher's item
    class_weights: torch.Tensor  # (N, 10)
    guidance: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return len(self.x0)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.x_T, self.x0, self.class_weights, self.guidance


def load_pairs(run_dir: str | os.PathLike, teacher_hash: str, pairs: int, shard_size: int) -> TeacherPairs:
    """Every shard of the run, read (each must be there: draw_missing first), x_T rebuilt from the seeds."""
    parts = []
    for k, count in enumerate(shard_sizes(pairs, shard_size)):
        data = read_shard(shard_path(run_dir, k), teacher_hash, count)
        if data is None:
            raise TrainingError(f"{shard_path(run_dir, k)} is missing or unreadable")
        seeds = data["seeds"]
        if not torch.equal(seeds, torch.arange(count) + seeds[0]):
            raise TrainingError(f"{shard_path(run_dir, k)} holds seeds that are not consecutive")
        x_T = ItemNoise(int(seeds[0]), count, False)((count, 1, 28, 28))
        parts.append((x_T, data["x0"], data["class_weights"].float(), data["guidance"].float()))
    return TeacherPairs(*(torch.cat(column) for column in zip(*parts)))

