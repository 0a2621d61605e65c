"""The training loop. The CLI, the TUI monitor and the tests all drive this same code.

Progress leaves through `on_event(TrainEvent)`; nothing here prints. It writes the run directory
core.training.rundir describes: run.json (state running/finished/stopped/failed), metrics.jsonl, the newest
`keep_checkpoints` checkpoints (each with a snapshot of the post-hoc EMA profiles, core.training.posthoc_ema,
when TrainConfig.posthoc_ema asks for them), and a sample grid per epoch (EMA weights, DDIM 25, guidance 2);
core.training.runfiles and core.training.state hold how each file is written and read back. With a
TensorBoardLog (core.training.tensorboard), the same events also become TensorBoard event files.

Under torchrun (world_size > 1, see core/training/distributed.py) every rank runs this loop on its
own shard of each epoch with DistributedDataParallel around the objective; only rank 0 writes.

What it trains on, the model it starts from, the objective and how its EMA samples are the hooks
below (`_training_set`, `_new_model`, `_new_objective`, `_inputs`, `sampling_generator`, GRID_SAMPLER,
`_record`): a Fashion-MNIST training here, a student's distillation in core.training.distill.

A step reads nothing back to the host (core.training.step): the loss and a NaN/inf flag are read
once when a log record or a checkpoint is due (under torchrun, in one all-reduce that also agrees
on stops), and a non-finite loss fails the run there, before any checkpoint is written.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Callable, NoReturn

import torch

from .. import autotune
from .. import checkpoint as ckpt
from ..classes import NUM_CLASSES
from ..data import DeviceBatches
from ..device import pick_device, resolve_precision
from ..model.config import DEFAULT_PRESET, DiffusionConfig, ModelConfig, TrainConfig, as_dict
from ..model.denoiser import Denoiser
from ..model.diffusion import DiffusionObjective
from . import distributed
from . import ranks as train_ranks
from . import state as train_state
from .posthoc_ema import PosthocEMA
from .rundir import METRICS, RUN_INFO, SAMPLES, list_checkpoints, sample_name
from .runfiles import cut_back_to, draw_sample_grid, run_info, update_run_info
from .state import RunSetup, TrainingError
from .step import LossTally, StepRunner, lr_at, make_optimizer, step_timer, update_ema


@dataclass
class TrainEvent:
    kind: str  # "start" | "log" | "notice" | "checkpoint" | "samples" | "epoch" | "quality" | "stopped" | "finished" | "pairs" (a distillation)
    step: int
    epoch: int
    data: dict = field(default_factory=dict)


@dataclass
class _Loop:
    """What run() carries from one step to the next; the step methods read and move it."""

    epoch: int  # the epoch the next step is in
    start_in_epoch: int  # the step within that epoch the next pass over its batches starts at
    images_into_epoch: int  # global images of `epoch` trained on: what a checkpoint stores as its place
    last_checkpoint_step: int
    run_start: float  # perf_counter at the start, moved later by every pause: paused time is not training time
    wall_time_before: float  # training seconds of earlier runs of this run directory
    global_batch: int  # images per step over all ranks
    metrics_path: Path
    metrics: IO[str] | None  # metrics.jsonl, line-buffered, rank 0 only
    identity: torch.Tensor  # (NUM_CLASSES, NUM_CLASSES): labels (B,) -> one-hot class weights (B, NUM_CLASSES)
    window_start: float = 0.0  # images_per_sec is measured over the steps since the last log record
    window_images: int = 0
    outcome: str = "finished"  # or "stopped"
    read_at: int = -1  # the step the tally was last read at, and what it said (LossTally.packed's order)
    read: list[float] = field(default_factory=list)
    stop_agreed: bool = False  # distributed: some rank was asked to stop, as of that read

    def elapsed(self) -> float:
        return self.wall_time_before + time.perf_counter() - self.run_start


class Trainer:
    """Build with configs and a run directory; call run(). Thread-safe stop() and pause()."""

    GRID_SAMPLER = ("ddim", 25)  # (sampler, steps) of each epoch's sample grid

    def __init__(
        self,
        run_dir: str | os.PathLike,
        train_config: TrainConfig,
        model_config: ModelConfig | None = None,
        diffusion_config: DiffusionConfig | None = None,
        data_dir: str | os.PathLike | None = None,
        resume: bool = False,
        as_trained: bool = False,  # on resume: every TrainConfig field but device from the checkpoint
        download: bool = False,
        on_event: Callable[[TrainEvent], None] | None = None,
        preset: str = DEFAULT_PRESET,
        data=None,  # an already loaded FashionMNIST split (tests)
        rank: int = 0,
        world_size: int = 1,
        quality=None,  # a core.evaluation.probe.QualityProbe: scores the EMA weights at each epoch's end (rank 0)
        tensorboard=None,  # a core.training.tensorboard.TensorBoardLog: the events as TensorBoard event files (rank 0)
    ):
        self.run_dir, self.train_config = Path(run_dir), train_config
        self.on_event = on_event or (lambda event: None)
        self.rank, self.world_size, self.quality, self.is_main = rank, world_size, quality, rank == 0
        self._stop, self._resume_allowed = threading.Event(), threading.Event()
        self._resume_allowed.set()
        self.stop_reason: str | None = None

        self.local_rank = int(os.environ.get("LOCAL_RANK", rank)) if world_size > 1 else 0
        self.device = train_ranks.rank_device(pick_device(train_config.device), world_size, self.local_rank)

        state, skipped = train_state.startup_state(self.run_dir, resume, self.is_main, world_size)
        if skipped is not None:
            self.resume_skipped = skipped  # checkpoints newer than the one resumed, and why each was passed over
        if state is not None:
            self._check_resumed(state)
        train_config, model_config, diffusion_config, preset = train_state.run_configs(
            state, as_trained, self.run_dir, train_config, model_config, diffusion_config, preset)
        self.train_config, self.model_config, self.diffusion_config, self.preset = (
            train_config, model_config, diffusion_config, preset)
        self.setup = RunSetup(preset, model_config, diffusion_config, train_config, self.device, rank, world_size)
        self.tensorboard = tensorboard if self.is_main else None
        if self.tensorboard is not None:
            self.on_event = self.tensorboard.follow(self, self.on_event)

        split = self._training_set(data, data_dir, download)
        if len(split) < 1:
            raise ValueError("no training images")
        if len(split) < world_size:
            raise ValueError(f"{len(split)} training images cannot be shared by {world_size} processes")
        self.batches = DeviceBatches(split, train_config.batch_size, self.device, train_config.seed, rank, world_size)

        torch.manual_seed(train_config.seed)  # initial weights and the null embedding: the same on every rank
        self.model = self._new_model().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.posthoc = PosthocEMA(self.model, train_config.posthoc_ema)  # EDM2's power-function EMAs; none when off
        # .to(): DDPModule keeps CPU buffers (its step tables); DDP broadcasts buffers at start
        self.objective = self._new_objective().to(self.device)
        self.train_module = train_ranks.wrap(self.objective, self.device, world_size)  # DDP broadcasts rank 0's weights here too
        self.optimizer = make_optimizer(self.model, train_config.lr, train_config.weight_decay)
        self.precision, self.precision_reason = self._precision(train_config)
        self.step, self.wall_time_before = 0, 0.0
        self.loss_smooth: float | None = None
        if state is not None:
            self.step, self.wall_time_before, self.loss_smooth = train_state.restore(
                state, self.model, self.ema, self.optimizer, self.device, self.posthoc)
        if world_size > 1 and rank > 0:
            # Ranks 1.. draw their own timesteps, noise and CFG drops (rank 0 keeps the single-process
            # stream, restored from the checkpoint on resume); seeded from (seed, rank, step), so a
            # distributed run is reproducible for a given world size.
            torch.manual_seed(train_config.seed * 1_000_003 + rank * 7_919 + self.step)
        self.start_epoch, self.start_in_epoch, self.total_steps = train_state.plan_position(
            state, self.step, self.batches.steps_per_epoch, train_config.batch_size * world_size,
            train_config.epochs, train_config.max_steps)
        self.compile_work = {"model": as_dict(model_config), "diffusion": as_dict(diffusion_config),
                             "batch": train_config.batch_size, "precision": self.precision, "world_size": world_size}
        self.runner = StepRunner(self.train_module, train_config, self.precision, self.device, notice=self._notice,
                                 images_to_train=(self.total_steps - self.step) * train_config.batch_size * world_size,
                                 measured=self._compile_measured(state), world_size=world_size)
        self._compile_recorded = self.runner.measured is not None
        self.tally = LossTally(self.device, self.loss_smooth)

    def _precision(self, train_config: TrainConfig) -> tuple[str, str]:
        """("bf16" or "fp32", why): on a CPU with native bf16, `auto` times a step's forward and
        backward in both (core.autotune; rank 0 decides for every rank)."""
        work = {"model": as_dict(self.model_config), "diffusion": as_dict(self.diffusion_config),
                "batch": train_config.batch_size}

        def measure():
            return autotune.measured_precision("training", work, step_timer(self.objective, self._timing_inputs(), self.device))

        if self.world_size == 1:
            return resolve_precision(train_config.precision, self.device, measure)
        decided = resolve_precision(train_config.precision, self.device, measure) if self.is_main else None
        return tuple(distributed.broadcast_object(decided))

    def _timing_inputs(self) -> tuple:
        """The objective's inputs for a full batch (the first of epoch 0), for timing a step."""
        batch = next(iter(self.batches.batches(0, 0)))
        return self._inputs(SimpleNamespace(identity=torch.eye(NUM_CLASSES, device=self.device)), batch)

    def _compile_measured(self, state: dict | None) -> dict | None:
        """An earlier compile trial's figures: the resumed run's own (run.json), else this machine's
        for this model, batch and precision (core.autotune), else None (a trial decides)."""
        if state is not None:
            try:
                info = json.loads((self.run_dir / RUN_INFO).read_text())
            except (OSError, ValueError):
                info = {}
            measured = info.get("compile_measured") if isinstance(info, dict) else None
            if isinstance(measured, dict) and info.get("precision") == self.precision:
                return measured
        return autotune.cached("compile", autotune.machine_identity(), self.compile_work)

    def _record_compile_trial(self) -> None:
        """A trial's verdict into run.json (a resume reuses it) and the machine's cache (later runs do)."""
        self._compile_recorded = True
        if self.is_main:
            autotune.remember("compile", autotune.machine_identity(), self.compile_work, self.runner.measured)
            self._write_run_info("running")
    # ----------------------------------------------------------------- what it trains (hooks)
    def _check_resumed(self, state: dict) -> None:
        """Refuse (TrainingError, one line) a checkpoint of another kind of run."""
        if "distill" in state:
            raise TrainingError(f"{self.run_dir} distils a student: continue it with fashion-train distill")

    def _training_set(self, data, data_dir, download: bool):
        """The rows to train on (their tensors() go to DeviceBatches): the Fashion-MNIST training split,
        or `data` (tests), cut to train_config.limit."""
        limit = self.train_config.limit
        split = data if data is not None else train_ranks.load_train_split(
            data_dir, download, limit, self.world_size, self.local_rank, self.device)
        if data is not None and limit is not None:
            split = type(split)(split.images[:limit], split.labels[:limit])
        return split

    def _new_model(self) -> torch.nn.Module:
        """The denoiser a fresh run starts from (after torch.manual_seed(train_config.seed))."""
        return Denoiser(self.model_config, self.diffusion_config)

    def _new_objective(self) -> torch.nn.Module:
        """The module whose forward takes a batch's inputs (_inputs) and returns the loss."""
        return DiffusionObjective(self.model, self.diffusion_config)

    def _inputs(self, loop: "_Loop", batch: tuple) -> tuple:
        """A batch of the training set as the objective's inputs: images and one-hot class weights."""
        x0, labels = batch
        return x0, loop.identity[labels]

    def sampling_generator(self) -> ckpt.Generator:
        """The EMA weights as a generator, for the sample grids and the quality probe."""
        return ckpt.Generator(self.ema, self.model_config, self.diffusion_config, None, "training", {})

    def _record(self) -> dict:
        """What checkpoints and run.json record beside the trainer's own fields."""
        return {}

    # ----------------------------------------------------------------- control
    def stop(self, reason: str = "stopped") -> None:
        self.stop_reason = reason
        self._stop.set()
        self._resume_allowed.set()

    def pause(self) -> None:
        self._resume_allowed.clear()

    def unpause(self) -> None:
        self._resume_allowed.set()

    @property
    def paused(self) -> bool:
        return not self._resume_allowed.is_set()

    # ----------------------------------------------------------------- distributed hooks (core.training.ranks)
    def close(self) -> None:
        """Let go of the DistributedDataParallel wrapper before shutdown_distributed().

        DDP keeps a reference to the process group, so destroy_process_group() alone leaves a gloo
        group alive until interpreter exit, where freeing it can abort the process (SIGABRT, exit
        code -6) after a clean run or a clean failure. The trainer cannot step after this."""
        if self.world_size > 1:
            self.train_module = self.runner = None
            gc.collect()

    # ----------------------------------------------------------------- checkpoints (core.training.state)
    def dump_weights(self, folder: str | os.PathLike) -> Path:
        """This rank's model and EMA weights to folder/rank{r}.pt (debugging: compare ranks after a run)."""
        return train_state.dump_weights(self.setup, self.model, self.ema, self.step, Path(folder))

    def save_checkpoint(self, epoch: int, images_into_epoch: int, elapsed: float) -> Path | None:
        if not self.is_main:
            return None
        try:
            state = train_state.capture(self.setup, self.model, self.ema, self.optimizer, self.step, self.loss_smooth,
                                        epoch, images_into_epoch, elapsed, self.posthoc) | self._record()
            path = train_state.write_checkpoint(state, self.run_dir, self.step, self.train_config.keep_checkpoints)
        except TrainingError as error:
            self._write_run_info("failed", error=str(error))
            raise
        self.on_event(TrainEvent("checkpoint", self.step, epoch, {"path": str(path)}))
        return path

    # ----------------------------------------------------------------- the run directory (core.training.runfiles)
    def sample_grid(self, epoch: int) -> Path | None:
        """One row per class from the EMA weights (GRID_SAMPLER at its default guidance; classes c..c+4
        from seed c, so each class keeps its noise from epoch to epoch). Rank 0 draws it; in a
        distributed run the other ranks wait for it at a barrier."""
        per_class = self.train_config.sample_grid_per_class
        if per_class <= 0:
            return None
        if not self.is_main:
            distributed.barrier(self.device)
            return None
        try:
            path = self.run_dir / SAMPLES / sample_name(epoch)
            draw_sample_grid(self.sampling_generator(), per_class, path,
                             {"kind": "training-samples", "epoch": epoch, "step": self.step, "rows": "one per class 0-9"},
                             *self.GRID_SAMPLER)
            self.on_event(TrainEvent("samples", self.step, epoch, {"path": str(path)}))
            return path
        finally:
            if self.world_size > 1:
                distributed.barrier(self.device)

    def _write_run_info(self, state: str, **extra) -> None:
        if self.is_main:
            measured = {"compile_measured": self.runner.measured} if self.runner.measured else {}
            update_run_info(self.run_dir / RUN_INFO, run_info(self.setup, state, self.batches.steps_per_epoch, self.total_steps,
                                                              precision=self.precision, precision_reason=self.precision_reason,
                                                              compile=self.runner.reason, **measured, **self._record(), **extra))

    # ----------------------------------------------------------------- the loop
    def run(self) -> dict:
        """Train to total_steps or a stop, then write the final checkpoint and return the result:
        {"outcome": "finished" | "stopped", "step", "epoch", "checkpoint", "metrics", "wall_time_sec", "reason"}."""
        loop = self._begin()
        try:
            while self.step < self.total_steps:
                batches = self.batches.batches(loop.epoch, loop.start_in_epoch)
                for in_epoch, batch in enumerate(batches, start=loop.start_in_epoch):
                    if not self._train_step(loop, in_epoch, self._inputs(loop, batch)) or self.step >= self.total_steps:
                        break
                if loop.outcome == "stopped":
                    break
                self._end_of_pass(loop)
            return self._finish(loop)
        finally:
            if loop.metrics is not None:
                loop.metrics.close()
            if self.tensorboard is not None:
                self.tensorboard.close()

    def _begin(self) -> _Loop:
        """run.json says running, the run directory is cut back to this step, metrics.jsonl opens, "start" goes out."""
        metrics_path, metrics = self.run_dir / METRICS, None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_info("running", started=time.time())
            cut_back_to(self.run_dir, self.step, self.posthoc)  # logs and snapshots of steps to be trained again
            metrics = open(metrics_path, "a", buffering=1)
        global_batch = self.train_config.batch_size * self.world_size
        self.on_event(TrainEvent("start", self.step, self.start_epoch, {
            "device": str(self.device), "total_steps": self.total_steps, "steps_per_epoch": self.batches.steps_per_epoch,
            "global_batch": global_batch, "world_size": self.world_size, "run_dir": str(self.run_dir),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "precision": self.precision, "precision_reason": self.precision_reason, "compile": self.runner.reason,
        }))
        if self.runner.unavailable:
            self._notice(self.runner.unavailable)
        run_start = time.perf_counter()
        loop = _Loop(epoch=self.start_epoch, start_in_epoch=self.start_in_epoch, window_start=run_start,
                     images_into_epoch=self.start_in_epoch * global_batch, last_checkpoint_step=self.step,
                     run_start=run_start, wall_time_before=self.wall_time_before, global_batch=global_batch,
                     metrics_path=metrics_path, metrics=metrics, identity=torch.eye(NUM_CLASSES, device=self.device))
        self.model.train()
        return loop

    def _train_step(self, loop: _Loop, in_epoch: int, inputs: tuple) -> bool:
        """One optimizer step on batch in_epoch of loop.epoch (the objective's inputs, images (B, 1, 28, 28)
        first), then its log record and checkpoint when they are due. False when the run stops (before
        this step, single-process; after it, when the ranks agreed to stop)."""
        self._wait_while_paused(loop)
        if self.world_size == 1 and self._stop.is_set():
            loop.outcome = "stopped"
            return False
        lr = lr_at(self.step, self.total_steps, self.train_config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.device.type == "cuda":
            inputs = tuple(v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for v in inputs)
        parameters = list(self.model.parameters())
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.runner(inputs, parameters)  # forward and backward, no host read
        if not self._compile_recorded and self.runner.measured is not None:
            self._record_compile_trial()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, self.train_config.grad_clip)
        self.optimizer.step()
        update_ema(self.ema, self.model, min(self.train_config.ema_decay, (1 + self.step) / (10 + self.step)))
        self.step += 1
        self.posthoc.update(self.model, self.step)
        self.tally.add(loss, grad_norm, self.step)
        loop.window_images += inputs[0].shape[0] * self.world_size
        loop.images_into_epoch = (in_epoch + 1) * loop.global_batch
        log_due = self.step % self.train_config.log_every == 0 or self.step == self.total_steps
        checkpoint_due = bool(self.train_config.checkpoint_every) and \
            self.step - loop.last_checkpoint_step >= self.train_config.checkpoint_every
        if log_due or checkpoint_due:
            self._read_tally(loop)
            if log_due:
                self._log(loop, in_epoch, lr)
            if checkpoint_due:
                self._checkpoint(loop)
            if loop.stop_agreed:  # distributed: every rank saw the request in the same all-reduce
                loop.outcome = "stopped"
                self.stop_reason = self.stop_reason or "a stop on another rank"
                return False
        return True

    def _read_tally(self, loop: _Loop) -> list[float]:
        """The steps' loss, smoothed loss, gradient norm and first non-finite step, read to the host:
        the one read between two log records, on every rank at the same steps. A non-finite loss
        fails the run here, so it never reaches a checkpoint."""
        if loop.read_at != self.step:
            loop.read, loop.stop_agreed = train_ranks.agree(self.tally.packed(), self.rank, self.world_size, self._stop)
            loop.read_at = self.step
            if self.tally.count:
                self.loss_smooth = loop.read[1]
            if loop.read[3] or not math.isfinite(loop.read[0]):
                self._fail_on_loss(loop.read)
        return loop.read

    def _wait_while_paused(self, loop: _Loop) -> None:
        """Block while pause() holds; the wait counts neither as training time nor in the next rate."""
        if self._resume_allowed.is_set():
            return
        paused_at = time.perf_counter()
        self._resume_allowed.wait()
        loop.run_start += time.perf_counter() - paused_at  # paused time is not training time
        loop.window_start, loop.window_images = time.perf_counter(), 0

    def _fail_on_loss(self, read: list[float]) -> NoReturn:
        """A NaN or infinite loss: run.json says failed, and the error names the last good checkpoint."""
        last = list_checkpoints(self.run_dir)
        kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written yet"
        first = int(read[3])
        where = f"at step {first}" if first > 0 else f"on another rank by step {self.step}"
        value = read[0] if not math.isfinite(read[0]) else "not finite"
        self._write_run_info("failed", error=f"loss became {value} {where}")
        raise TrainingError(f"loss became {value} {where}; stopped, {kept}")

    def _log(self, loop: _Loop, in_epoch: int, lr: float) -> None:
        """One metrics.jsonl line and "log" event; the rate is over the images since the last one."""
        loss, loss_smooth, grad_norm = loop.read[:3]
        now = time.perf_counter()
        rate = loop.window_images / max(1e-9, now - loop.window_start)
        loop.window_start, loop.window_images = now, 0
        remaining = (self.total_steps - self.step) * loop.global_batch / max(rate, 1e-9)
        record = {
            "step": self.step, "epoch": loop.epoch + (in_epoch + 1) / self.batches.steps_per_epoch,
            "loss": loss, "loss_smooth": loss_smooth, "lr": lr,
            "grad_norm": grad_norm, "images_per_sec": rate,
            "elapsed_sec": loop.elapsed(), "eta_sec": remaining, "total_steps": self.total_steps,
            "time": time.time(),
        }
        if loop.metrics is not None:
            loop.metrics.write(json.dumps(record) + "\n")
        self.on_event(TrainEvent("log", self.step, loop.epoch, record))

    def _checkpoint(self, loop: _Loop) -> None:
        """A checkpoint at loop's place (rank 0 writes it; every rank counts it), after the tally's read."""
        self._read_tally(loop)
        self.save_checkpoint(loop.epoch, loop.images_into_epoch, loop.elapsed())
        loop.last_checkpoint_step = self.step

    def _notice(self, message: str) -> None:
        """Something the person training should know, once (e.g. compilation fell back to eager)."""
        self.on_event(TrainEvent("notice", self.step, 0, {"message": message}))

    def _end_of_pass(self, loop: _Loop) -> None:
        """After the batches of one pass: at the end of an epoch, its checkpoint (unless this step has
        one), the "epoch" event and the sample grid; otherwise where the next pass starts."""
        if loop.images_into_epoch < self.batches.steps_per_epoch * loop.global_batch:
            loop.start_in_epoch = loop.images_into_epoch // loop.global_batch
            return
        loop.epoch += 1
        loop.start_in_epoch, loop.images_into_epoch = 0, 0
        if self.step != loop.last_checkpoint_step:
            self._checkpoint(loop)
        self.on_event(TrainEvent("epoch", self.step, loop.epoch, {"elapsed_sec": loop.elapsed()}))
        if self.quality is not None and self.is_main:  # the other ranks wait at the sample grid's barrier
            self.quality(self, loop.epoch, loop.elapsed)
        self.sample_grid(loop.epoch)

    def _finish(self, loop: _Loop) -> dict:
        """The final checkpoint (unless this step has one), run.json's final state, the result and its event."""
        path = None
        if self.step != loop.last_checkpoint_step or not list_checkpoints(self.run_dir):
            self._read_tally(loop)
            path = self.save_checkpoint(loop.epoch, loop.images_into_epoch, loop.elapsed())
        newest = list_checkpoints(self.run_dir)
        path = path or (newest[-1] if newest else None)
        self._write_run_info(loop.outcome, finished=time.time(), step=self.step, wall_time_sec=loop.elapsed())
        result = {"outcome": loop.outcome, "step": self.step, "epoch": loop.epoch,
                  "checkpoint": str(path) if path else None, "metrics": str(loop.metrics_path),
                  "wall_time_sec": loop.elapsed(), "reason": self.stop_reason}
        self.on_event(TrainEvent(loop.outcome, self.step, loop.epoch, result))
        return result
