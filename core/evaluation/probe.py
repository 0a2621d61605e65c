"""The quality probe: at each epoch's end a training scores a fixed, seeded set of items drawn from
its EMA weights with the shipped classifier, and appends one JSON line to the run's quality.jsonl
(core.training.rundir.QUALITY), which the monitor draws as a second curve.

The items are those `fashion-tui evaluate --seed 0` draws first for every class (the default
sampler, DPM-Solver++ 20 steps at its default guidance, or the sampler the probe is given: a
student's distillation scores the student sampler; item i of class c from seed
c * CLASS_SEED_STRIDE + i), so a probe's accuracy is the evaluator's on a subset and the same items
are scored every epoch. The distance is KID (core.evaluation.metrics.kernel_distance) against a
class-balanced draw of real test items: at a few hundred items the Frechet distance is mostly its
own bias (~330 / N on these features), KID is unbiased at any N.

The trainer calls a probe on rank 0 only (the other ranks wait at the sample grid's barrier). A run
without the test split or the classifier says so once through a "notice" event and trains on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from .. import checkpoint as ckpt
from ..classes import NUM_CLASSES
from ..data import DataError, load_split
from ..sampling.limits import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, STUDENT
from ..sampling.samplers import sampling_precision
from ..training.rundir import QUALITY
from .classifier import EvaluationError, _forward_batched, load_classifier
from .cli import make_sample_fn
from .metrics import _accuracy_from_predictions, _nan_to_none, balanced_draws, kernel_distance

# At most 20 items of each class: 200 DPM-Solver++ 20 items cost ~5% of an epoch of the default preset
# on this project's 2-core CPU (bench/benchmark.py), and the accuracy's standard error at ~90% is
# about 2 points, half of it shared with the evaluator's 100 per class (the same first items).
PROBE_PER_CLASS = 20
# Sampling one item costs about as much as training on this many images (its 28 model calls, at a
# sampler's small batches; bench/benchmark.py measures it), so `auto` picks the most items per class
# whose cost stays within PROBE_BUDGET of an epoch's training images: 20 for a full epoch, fewer for
# a --limit run, 1 for a test's handful of images.
ITEM_COST_IN_TRAINING_IMAGES = 14
DEFAULT_SAMPLER_CALLS = 28  # the default sampler's model calls per item (20 steps, 8 of them doubled by CFG)
PROBE_BUDGET = 0.10
REAL_PER_CLASS = 100  # real test items of each class the kernel distance compares with, drawn once
KID_PROBE_SUBSETS = 20  # subsets of min(items, real items) rows averaged for the kernel distance


def auto_per_class(images_per_epoch: int, calls_per_item: int = DEFAULT_SAMPLER_CALLS) -> int:
    """Items of each class the probe scores for an epoch of `images_per_epoch` (1-PROBE_PER_CLASS), each
    item costing `calls_per_item` model calls (a training image costs the same whatever the sampler)."""
    item_cost = ITEM_COST_IN_TRAINING_IMAGES * calls_per_item / DEFAULT_SAMPLER_CALLS
    affordable = int(PROBE_BUDGET * images_per_epoch / (item_cost * NUM_CLASSES))
    return max(1, min(PROBE_PER_CLASS, affordable))


def model_calls(sampler: str, steps: int) -> int:
    """Model calls per item of `sampler` at `steps` steps and its default guidance, roughly: the
    student's one per step, DEFAULT_SAMPLER_CALLS for the default sampler scaled by its steps."""
    if sampler == STUDENT:
        return steps
    return max(1, round(DEFAULT_SAMPLER_CALLS * steps / DEFAULT_STEPS[DEFAULT_SAMPLER]))


def _write_line(path: Path, record: dict) -> None:
    """One complete JSON line, appended in one write: a reader sees the whole line or a partial last
    one it skips until it ends."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


class QualityProbe:
    """Call as probe(trainer, epoch, elapsed) at an epoch's end; returns the record it wrote, or None
    when it cannot score (said once). `elapsed()` gives the run's training seconds so far.
    per_class: items of each class, or None for auto_per_class of the trainer's epoch.
    sampler, steps: what draws the items (steps None: the sampler's default), at the sampler's default
    guidance; the trainer's sampling_generator() gives the model."""

    def __init__(self, data_dir: str | os.PathLike | None, per_class: int | None = None,
                 classifier: str | os.PathLike | None = None, real_per_class: int = REAL_PER_CLASS, seed: int = 0,
                 sampler: str = DEFAULT_SAMPLER, steps: int | None = None):
        if per_class is not None and per_class < 1:
            raise ValueError(f"quality items per class must be at least 1, not {per_class}")
        self.data_dir, self.classifier_path = data_dir, classifier
        self.sampler, self.steps = sampler, steps if steps is not None else DEFAULT_STEPS[sampler]
        self.per_class = per_class  # None: auto_per_class of the trainer's epoch, at the first probe
        self.real_per_class, self.seed = real_per_class, seed
        self.classifier = None
        self.real_features: torch.Tensor | None = None  # (10 * real_per_class, F), computed once per run
        self.off: str | None = None  # why the probe cannot score, once found
        self.since: float | None = None  # training seconds at the end of the previous probe

    def prepare(self, device: torch.device) -> str | None:
        """Load the classifier and the real items' features once; why not, in one line, or None."""
        if self.off is not None or self.real_features is not None:
            return self.off
        try:
            classifier = load_classifier(self.classifier_path).to(device)
            test = load_split("test", self.data_dir)
        except (EvaluationError, DataError) as error:
            self.off = f"no quality probe: {' '.join(str(error).split())}; training goes on without it"
            return self.off
        rows = balanced_draws(test.labels, self.real_per_class, draws=1, seed=self.seed)[0]
        self.real_features = _forward_batched(classifier, test.as_float()[rows])[0]
        self.classifier = classifier
        return None

    def score(self, generator: ckpt.Generator, device: torch.device) -> dict:
        """Sample the probe's items from `generator` and score them: accuracy overall and per class, KID."""
        precision = sampling_precision(generator, "auto", device)[0]
        sample_fn = make_sample_fn(generator, DEFAULT_GUIDANCE[self.sampler], self.sampler, self.steps, self.seed,
                                   self.per_class, precision=precision)
        images = torch.cat([sample_fn(c, self.per_class) for c in range(NUM_CLASSES)])  # (10 * per_class, 1, 28, 28)
        feats, predicted = _forward_batched(self.classifier, images.float().clamp(-1, 1))
        targets = torch.arange(NUM_CLASSES).repeat_interleave(self.per_class)
        accuracy, per_class = _accuracy_from_predictions(predicted, targets)
        kid, kid_std = kernel_distance(feats, self.real_features, subsets=KID_PROBE_SUBSETS, seed=self.seed)
        return {"accuracy": accuracy, "per_class_accuracy": [_nan_to_none(v) for v in per_class], "kid": kid,
                "kid_std": kid_std, "items": len(images), "per_class": self.per_class, "real_items": len(self.real_features),
                "sampler": self.sampler, "steps": self.steps,
                "guidance": DEFAULT_GUIDANCE[self.sampler], "precision": precision, "seed": self.seed}

    def __call__(self, trainer, epoch: int, elapsed: Callable[[], float]) -> dict | None:
        from ..training.trainer import TrainEvent

        start, started = time.perf_counter(), elapsed()
        train_seconds = started - (self.since if self.since is not None else trainer.wall_time_before)
        was_off = self.off
        if self.per_class is None:
            self.per_class = auto_per_class(trainer.batches.steps_per_epoch * trainer.train_config.batch_size
                                            * trainer.world_size, model_calls(self.sampler, self.steps))
        # building the classifier initialises layers from the global RNG: fork it, so the training's
        # stream of timesteps and noise is where it was (a run with a probe trains the same weights)
        try:
            with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
                if self.prepare(trainer.device) is None:
                    scores = self.score(trainer.sampling_generator(), trainer.device)
        except EvaluationError as error:  # a model whose items are not finite: the loss check stops it soon
            self.off = f"quality probe stopped: {error}; training goes on without it"
        if self.off is not None:
            if was_off is None:
                trainer.on_event(TrainEvent("notice", trainer.step, epoch, {"message": self.off}))
            return None
        seconds = time.perf_counter() - start
        record = {"step": trainer.step, "epoch": epoch,
                  "images": trainer.step * trainer.train_config.batch_size * trainer.world_size,
                  "elapsed_sec": started, **scores, "seconds": seconds, "train_seconds": train_seconds,
                  "cost": seconds / train_seconds if train_seconds > 0 else None, "time": time.time()}
        _write_line(trainer.run_dir / QUALITY, record)
        trainer.on_event(TrainEvent("quality", trainer.step, epoch, record))
        self.since = elapsed()
        return record
