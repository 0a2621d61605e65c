"""A few-step student distilled from a generator: teacher-pair distillation on the straight DDIM path
(reflow, Liu et al. 2023, in the VP form of the teacher's schedule).

    pairs (core.training.pairs): x_T, class weights, g  ->  x0* = the teacher's item at that g (28 calls)
    eps_T = (x_T - a_T x0*) / s_T                 the noise that DDIM's straight path from x_T to x0* carries, T = 999
    t: grid_share of the items at the student's timesteps (STUDENT_TIMESTEPS, 1-4 steps), the rest uniform in 1-999
    x_t = a_t x0* + s_t eps_T                     a_t = sqrt(abar_t), s_t = sqrt(1 - abar_t)
      or, for rollout_share of the items, x_t where the student's own sampler puts a grid's second call:
    x_t = a_t c + s_t (x_T - a_T c) / s_T         c = clamp(the student's x0 at x_T, T), no gradient; t in SECOND_CALLS
    x0_hat = the student's x0 prediction at x_t   (its v prediction: a_t x_t - s_t v)
    loss = mean (x0_hat - x0*)^2 + lambda_p |f(x0_hat) - f(x0*)|^2

f is the evaluator's classifier's penultimate features, unit-normalised (frozen; core.evaluation.classifier,
handed in by fashion-train distill, as the quality probe is). On that path every x_t of a pair shares the
noise eps_T, so DDIM from x_T at any of the student's grids lands on x0* once the student predicts x0*
from each of its x_t: 1-4 calls where the teacher made 28.

The student is the teacher's U-Net with a guidance input (ModelConfig.guidance_input): it starts from
the teacher's EMA weights, as exactly the teacher's conditional model at every g, and learns what CFG at
g, the guidance interval and composed mixes make of it. Its training is core.training.trainer's loop
(checkpoints, resume, metrics.jsonl, run.json, torchrun) over the pairs; an epoch is one pass over them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint as ckpt
from ..device import resolve_precision
from ..model.config import DistillConfig, TrainConfig, as_dict
from ..model.denoiser import Denoiser
from ..model.diffusion import make_predictor, make_schedule
from ..model.unet import GUIDANCE_KEY
from ..sampling.limits import DEFAULT_STEPS, STUDENT, STUDENT_TIMESTEPS
from . import distributed, pairs
from .rundir import STUDENT_EXPORT, list_checkpoints
from .state import TrainingError
from .trainer import TrainEvent, Trainer

PRESET = "student"  # what run.json and the checkpoints name as the preset
GRID_TIMESTEPS = tuple(t for grid in STUDENT_TIMESTEPS.values() for t in grid)  # every grid's timesteps, each grid once
SECOND_CALLS = tuple(grid[1] for grid in STUDENT_TIMESTEPS.values() if len(grid) > 1)  # where each grid's 2nd call is


def student_of(teacher: ckpt.Generator, init: str | os.PathLike | None = None) -> Denoiser:
    """The teacher's network with a guidance input, holding the teacher's weights: before it learns
    anything it predicts exactly what the teacher's conditional model does (the guidance embedding's
    last layer starts at zero). init: a student of this teacher (a student.pt, a shipped
    NAME-student.pt) whose weights it starts from instead, to go on distilling it. CFG's null
    embedding is frozen: a student never calls it."""
    config = dataclasses.replace(teacher.model_config, guidance_input=True)
    if init is not None:
        student = _student_to_continue(teacher, init, config)
    else:
        student = Denoiser(config, teacher.diffusion_config)
        missing, unexpected = student.load_state_dict(teacher.denoiser.state_dict(), strict=False)
        if unexpected or any(not key.startswith("guided.model.guidance_embedding.") for key in missing):
            raise TrainingError(f"the teacher's weights do not fit its student (missing {missing[:2]}, unexpected {unexpected[:2]})")
    student.guided.train_unconditional_embedding.requires_grad_(False)
    return student


def _student_to_continue(teacher: ckpt.Generator, path: str | os.PathLike, config) -> Denoiser:
    """The student at `path` (its EMA weights, in float32): TrainingError (one line) unless it is a
    student distilled from this very teacher."""
    try:
        data = ckpt.read_checkpoint(path)
        denoiser, model_config, diffusion_config = ckpt.build_denoiser(data, "ema", path)
    except ckpt.CheckpointError as error:
        raise TrainingError(f"--init: {error}") from None
    record = data.get("distill") if isinstance(data.get("distill"), dict) else {}
    if not model_config.guidance_input or record.get("teacher_hash") != teacher.hash:
        raise TrainingError(f"--init: {path} is not a student of {teacher.path.name if teacher.path else 'this teacher'} "
                            f"({teacher.hash}); it {'was distilled from ' + str(record.get('teacher_hash')) if record else 'is no student'}")
    if model_config != config or diffusion_config != teacher.diffusion_config:
        raise TrainingError(f"--init: {path} has another network or schedule than this teacher's student")
    return denoiser


class DistillObjective(nn.Module):
    """One step's loss for a batch of pairs: forward(x_T, x0*, class weights, g) -> scalar (the module
    docstring's). `features`: the frozen network whose unit-normalised features the perceptual term
    compares (None, or perceptual 0: pixels alone). It is kept out of this module's parameters, so
    DistributedDataParallel and the optimizer see the student alone."""

    def __init__(self, student: Denoiser, diffusion_config, config: DistillConfig, features: nn.Module | None = None):
        super().__init__()
        self.student, self.config = student, config
        self.schedule = make_schedule(diffusion_config)
        self.predictor = make_predictor(diffusion_config, self.schedule)
        abar = self.schedule.alphas_cumprod.float()  # (T,)
        self.register_buffer("alpha", abar.sqrt(), persistent=False)  # a_t
        self.register_buffer("sigma", (1 - abar).sqrt(), persistent=False)  # s_t
        self.register_buffer("grid", torch.tensor(GRID_TIMESTEPS), persistent=False)
        self.register_buffer("second", torch.tensor(SECOND_CALLS), persistent=False)
        self.__dict__["features"] = features.eval().requires_grad_(False) if features is not None and config.perceptual else None

    def _apply(self, fn, *args, **kwargs):
        if self.features is not None:  # .to(device) moves the unregistered feature network too
            self.features._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def timesteps(self, batch: int, device: torch.device) -> torch.Tensor:
        """(B,) t: grid_share at the student's grids' timesteps, the rest uniform in 1..T-1 (global RNG,
        which the trainer seeds and checkpoints)."""
        last = len(self.alpha) - 1
        on_grid = self.grid[torch.randint(len(self.grid), (batch,), device=device)]
        uniform = torch.randint(1, last + 1, (batch,), device=device)
        return torch.where(torch.rand(batch, device=device) < self.config.grid_share, on_grid, uniform)

    def forward(self, x_T: torch.Tensor, x0: torch.Tensor, class_weights: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        x0, last = x0.float(), len(self.alpha) - 1
        eps = (x_T - self.alpha[last] * x0) / self.sigma[last]  # (B,1,28,28): the path's noise
        t = self.timesteps(x0.shape[0], x0.device)
        x_t = self.alpha[t].view(-1, 1, 1, 1) * x0 + self.sigma[t].view(-1, 1, 1, 1) * eps
        conditions = {"class_weights": class_weights, GUIDANCE_KEY: guidance}
        rolled = int(self.config.rollout_share * x0.shape[0])  # a fixed count, so a compiled step keeps one shape
        if rolled:
            x_t, t = self.rollout(x_T, x_t, t, rolled, conditions)
        out = self.student(x_t, t, conditions)
        x0_hat = self.predictor.predict_x0(out.prediction.float(), x_t, t)  # (B,1,28,28), unclamped
        loss = F.mse_loss(x0_hat, x0)
        if self.features is not None:
            with torch.no_grad():
                target = F.normalize(self.features.features(x0).float(), dim=1)
            found = F.normalize(self.features.features(x0_hat).float(), dim=1)
            loss = loss + self.config.perceptual * (found - target).square().sum(dim=1).mean()
        return loss

    def rollout(self, x_T: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, rolled: int, conditions: dict):
        """(x_t, t) with the first `rolled` items (the batches are shuffled) moved to where the student
        sampler's second call finds them: its own first call at T from x_T, x0 clamped as the sampler
        clamps it, then the DDIM step to a grid's second timestep (the module docstring's). No gradient
        flows through the first call: the second learns to mend what it is handed."""
        last = len(self.alpha) - 1
        start = x_T[:rolled]  # (R,1,28,28): x at T is the pair's noise itself
        at_T = torch.full((rolled,), last, device=t.device, dtype=t.dtype)
        with torch.no_grad():
            first = self.student(start, at_T, {key: value[:rolled] for key, value in conditions.items()})
            c = self.predictor.predict_x0(first.prediction.float(), start, at_T).clamp(-1, 1)
        s = self.second[torch.randint(len(self.second), (rolled,), device=t.device)]
        moved = self.alpha[s].view(-1, 1, 1, 1) * c + self.sigma[s].view(-1, 1, 1, 1) * (start - self.alpha[last] * c) / self.sigma[last]
        return torch.cat([moved.to(x_t.dtype), x_t[rolled:]]), torch.cat([s, t[rolled:]])


class StudentTrainer(Trainer):
    """The training loop of core.training.trainer on a teacher's pairs: the student starts from the
    teacher's weights, learns DistillObjective, and its EMA samples with the student sampler (the
    quality probe a caller hands in should score that sampler). Draws the pairs it lacks first
    ("pairs" events: done, total, pairs_per_sec) and ends by writing RUN_DIR/student.pt."""

    GRID_SAMPLER = (STUDENT, DEFAULT_STEPS[STUDENT])

    def __init__(self, run_dir: str | os.PathLike, train_config: TrainConfig, distill_config: DistillConfig,
                 teacher: ckpt.Generator, features: nn.Module | None = None, init: str | os.PathLike | None = None,
                 **trainer_options):
        """teacher: the generator to distil (on the training device); features: the perceptual term's
        network (the evaluator's classifier); init: a student of this teacher to start from (student_of);
        trainer_options: Trainer's resume, on_event, rank, world_size, quality."""
        if teacher.diffusion_config.steps != 1000:
            raise ValueError(f"the student's timesteps are set for a 1000-step schedule; the teacher has "
                             f"{teacher.diffusion_config.steps}")
        if teacher.model_config.guidance_input:
            raise ValueError("the teacher is itself a student; distil from a generator")
        self.teacher, self.distill_config, self.features = teacher, distill_config, features
        # a student to go on from, read before the pairs are drawn so that a wrong one fails at once;
        # a resumed run takes its weights from its checkpoint and its record (_check_resumed)
        self.init = None if init is None else student_of(teacher, init)
        self.continues = None if init is None else (Path(init).name, ckpt.file_hash(init))
        model_config = dataclasses.replace(teacher.model_config, guidance_input=True)
        super().__init__(run_dir, train_config, model_config, teacher.diffusion_config, preset=PRESET, **trainer_options)

    # ----------------------------------------------------------------- Trainer's hooks
    def _check_resumed(self, state: dict) -> None:
        record = state.get("distill")
        if not isinstance(record, dict):
            raise TrainingError(f"{self.run_dir} holds a training, not a student's distillation: pick a new --run-dir")
        if record.get("teacher_hash") != self.teacher.hash:
            raise TrainingError(f"{self.run_dir} distils teacher {record.get('teacher')} ({record.get('teacher_hash')}), "
                                f"not {self.teacher.path} ({self.teacher.hash}): give it that --teacher")
        self.init, self.continues = None, (record["init"], record.get("init_hash")) if record.get("init") else None

    def _training_set(self, data, data_dir, download: bool) -> pairs.TeacherPairs:
        """The teacher's pairs: this rank's share of the missing shards drawn (rank r: r, r+W, ...), then
        whatever is still missing here (a run directory other ranks cannot see), then all read."""
        config, precision = self.distill_config, resolve_precision(self.train_config.precision, self.device)[0]
        count = len(pairs.shard_sizes(config.pairs, config.shard_size))
        for shards in (range(self.rank, count, self.world_size), None):
            start = time.perf_counter()

            def progress(done, total):
                self.on_event(TrainEvent("pairs", 0, 0, {"done": done, "total": total,
                                                         "pairs_per_sec": done / max(1e-9, time.perf_counter() - start)}))

            pairs.draw_missing(self.run_dir, self.teacher, config.pairs, config.shard_size, precision, self.device,
                               shards, progress if self.is_main else None)
            distributed.barrier(self.device)
        return pairs.load_pairs(self.run_dir, self.teacher.hash, config.pairs, config.shard_size)

    def _new_model(self) -> Denoiser:
        return self.init if self.init is not None else student_of(self.teacher)

    def _new_objective(self) -> nn.Module:
        return DistillObjective(self.model, self.diffusion_config, self.distill_config, self.features)

    def _inputs(self, loop, batch: tuple) -> tuple:
        return batch  # (x_T, x0*, class weights, g): the objective's inputs as they are

    def sampling_generator(self) -> ckpt.Generator:
        """The teacher with the student's EMA weights as its student (the student sampler's generator)."""
        student = ckpt.Generator(self.ema, self.model_config, self.diffusion_config, None, "training", {})
        return dataclasses.replace(self.teacher, guide=None, student=student)

    def _record(self) -> dict:
        record = {"teacher": self.teacher.path.name if self.teacher.path else None, "teacher_hash": self.teacher.hash,
                  "config": as_dict(self.distill_config)}
        if self.continues is not None:  # the student it went on from
            record["init"], record["init_hash"] = self.continues
        return {"distill": record}

    # ----------------------------------------------------------------- the run
    def run(self) -> dict:
        """Trainer.run, then the newest checkpoint's EMA as RUN_DIR/student.pt (rank 0): a sampling
        checkpoint to load beside the teacher (NAME-student.pt) or with --student."""
        result = super().run()
        newest = list_checkpoints(self.run_dir)
        if self.is_main and newest:
            path = self.run_dir / STUDENT_EXPORT
            ckpt.export_generator(ckpt.read_checkpoint(newest[-1]), path)
            result["student"] = str(path)
        return result

