"""The training loop. The CLI, the TUI monitor and the tests all drive this same code.

Progress leaves through `on_event(TrainEvent)`; nothing here prints. It writes the run directory
core.rundir describes: run.json (state running/finished/stopped/failed), metrics.jsonl, the newest
`keep_checkpoints` checkpoints, and a sample grid per epoch (EMA weights, DDIM 25, guidance 2).

Under torchrun (world_size > 1, see core/distributed.py) every rank runs this loop on its own
shard of each epoch with DistributedDataParallel around the objective; only rank 0 writes
any of the above, and the ranks agree each step (one all-reduce) on the loss, NaNs and stops.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint as ckpt
from . import distributed
from .checkpoint import CheckpointError, atomic_save, atomic_write_bytes, read_checkpoint
from .classes import NUM_CLASSES
from .config import DEFAULT_PRESET, PRESETS, DiffusionConfig, ModelConfig, TrainConfig, as_dict
from .config import from_dict as config_from_dict
from .data import DeviceBatches, load_split
from .device import pick_device  # noqa: F401 (callers have imported it from here)
from .diffusion import DiffusionObjective
from .model import Denoiser
from .rundir import CHECKPOINTS, METRICS, RUN_INFO, SAMPLE_SCALE, SAMPLES, checkpoint_name, list_checkpoints, sample_name



class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad resume); one line, says what was kept."""


@dataclass
class TrainEvent:
    kind: str  # "start" | "log" | "checkpoint" | "samples" | "epoch" | "stopped" | "finished"
    step: int
    epoch: int
    data: dict = field(default_factory=dict)


def lr_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warm-up to lr, then cosine decay to lr * min_lr_ratio at total_steps.

    The warm-up is capped at a tenth of the run, so a short smoke run still reaches its lr."""
    warmup = max(1, min(config.warmup_steps, total_steps // 10))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes((json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), path)


class Trainer:
    """Build with configs and a run directory; call run(). Thread-safe stop() and pause()."""

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
    ):
        self.run_dir = Path(run_dir)
        self.train_config = train_config
        self.on_event = on_event or (lambda event: None)
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        self._stop = threading.Event()
        self._resume_allowed = threading.Event()
        self._resume_allowed.set()
        self.stop_reason: str | None = None

        self.local_rank = int(os.environ.get("LOCAL_RANK", rank)) if world_size > 1 else 0
        self.device = pick_device(train_config.device)
        if world_size > 1:
            if not distributed.is_initialized():
                raise TrainingError("world_size > 1 needs a torch.distributed process group: launch with torchrun "
                                    "(train_cli.py calls core.distributed.init_distributed)")
            if self.device.type == "mps":
                raise ValueError("distributed training does not support MPS; use --device cpu or CUDA GPUs")
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.local_rank % torch.cuda.device_count())

        state = self._startup_state(resume)
        if state is not None and as_trained:  # resume as it was trained (the app's monitor); train_cli passes its flags
            try:
                saved = config_from_dict(TrainConfig, state.get("train_config", {}))
            except (TypeError, ValueError) as error:
                raise TrainingError(f"the newest checkpoint in {self.run_dir / 'checkpoints'} has an unusable train "
                                    f"config: {str(error).splitlines()[0][:160]}") from None
            self.train_config = train_config = replace(saved, device=train_config.device)
        if state is not None:
            model_config = ModelConfig.from_dict(state["model_config"])
            diffusion_config = DiffusionConfig.from_dict(state["diffusion_config"])
            preset = state.get("preset", preset)
        if model_config is None or diffusion_config is None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
            model_config = model_config or PRESETS[preset].model
            diffusion_config = diffusion_config or PRESETS[preset].diffusion
        self.model_config, self.diffusion_config, self.preset = model_config, diffusion_config, preset

        split = data if data is not None else self._load_data(data_dir, download)
        if data is not None and train_config.limit is not None:
            split = type(split)(split.images[: train_config.limit], split.labels[: train_config.limit])
        if len(split) < 1:
            raise ValueError("no training images")
        if len(split) < world_size:
            raise ValueError(f"{len(split)} training images cannot be shared by {world_size} processes")
        self.batches = DeviceBatches(split, train_config.batch_size, self.device, train_config.seed, rank, world_size)

        torch.manual_seed(train_config.seed)  # initial weights and the null embedding: the same on every rank
        self.model = Denoiser(model_config, diffusion_config).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        # .to(): DDPModule keeps CPU buffers (its step tables); DDP broadcasts buffers at start
        self.objective = DiffusionObjective(self.model, diffusion_config).to(self.device)
        self.train_module = self._wrap_distributed(self.objective)  # DDP broadcasts rank 0's weights here too
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
        self.step, self.wall_time_before = 0, 0.0
        self.loss_smooth: float | None = None
        if state is not None:
            self._restore(state)
        if world_size > 1 and rank > 0:
            # Ranks 1.. draw their own timesteps, noise and CFG drops (rank 0 keeps the single-process
            # stream, restored from the checkpoint on resume); seeded from (seed, rank, step), so a
            # distributed run is reproducible for a given world size.
            torch.manual_seed(train_config.seed * 1_000_003 + rank * 7_919 + self.step)
        self._plan_position(state)
        self.step_fn = torch.compile(self.train_module) if train_config.compile else self.train_module

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

    # ----------------------------------------------------------------- distributed hooks
    def _wrap_distributed(self, module):
        """DDP around the whole objective, so step_fn's forward (and so every gradient) goes through it.

        Every parameter gets a gradient in every step (the CFG null embedding enters through
        torch.where even when no item is dropped; tests/core/test_distributed.py checks each
        preset), so DDP needs no unused-parameter search; the only buffers are DDPModule's
        constant eval steps, so they are not re-broadcast each step.
        """
        if self.world_size > 1:
            import inspect

            from torch.nn.parallel import DistributedDataParallel

            # newer torch renamed broadcast_buffers (and warns about the old name)
            no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                       else "broadcast_buffers")
            return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                           **{no_sync: False})
        return module

    def close(self) -> None:
        """Let go of the DistributedDataParallel wrapper before shutdown_distributed().

        DDP keeps a reference to the process group, so destroy_process_group() alone leaves a gloo
        group alive until interpreter exit, where freeing it can abort the process (SIGABRT, exit
        code -6) after a clean run or a clean failure. The trainer cannot step after this."""
        if self.world_size > 1:
            self.train_module = self.step_fn = None
            gc.collect()

    def _startup_state(self, resume: bool) -> dict | None:
        """Rank 0 alone checks the run directory (no clobbering; newest usable checkpoint) and
        sends the verdict and the state to the other ranks, so every rank fails alike and the
        run directory need not be visible from other machines."""
        verdict = None
        if self.is_main:
            try:
                if not resume:
                    if list_checkpoints(self.run_dir):
                        raise TrainingError(f"{self.run_dir} already holds checkpoints: add --resume to continue it, "
                                            f"or pick a new --run-dir")
                    verdict = ("ok", None)
                else:
                    verdict = ("ok", self._load_resume_state())
            except TrainingError as error:
                verdict = ("error", str(error))
        if self.world_size > 1:
            verdict = distributed.broadcast_object(verdict)
        if verdict[0] == "error":
            raise TrainingError(verdict[1])
        return verdict[1]

    def _load_data(self, data_dir, download: bool):
        limit = self.train_config.limit
        if download and self.world_size > 1:
            # one download per machine: local rank 0 fetches, the others wait, then read the files
            split = load_split("train", data_dir, download_missing=True, limit=limit) if self.local_rank == 0 else None
            distributed.barrier(self.device)
            return split if split is not None else load_split("train", data_dir, limit=limit)
        return load_split("train", data_dir, download_missing=download, limit=limit)

    def _agree(self, loss: torch.Tensor) -> tuple[float, bool, bool]:
        """(loss averaged over ranks, finite on every rank, some rank was asked to stop).

        One all-reduce per step carries all three, so a NaN on one rank or a signal that reached
        one rank makes every rank leave the loop at the same step (no rank is left waiting in a
        collective). Single-process: no collective, and the stop flag is checked before the step.
        """
        if self.world_size == 1:
            value = float(loss.detach())
            return value, math.isfinite(value), False
        value = loss.detach().float().reshape(())
        packed = torch.stack([value, (~torch.isfinite(value)).float(),
                              torch.tensor(1.0 if self._stop.is_set() else 0.0, device=value.device)])
        total, bad, stop = distributed.all_reduce_sum(packed).tolist()
        return total / self.world_size, bad == 0, stop > 0

    def _plan_position(self, state: dict | None) -> None:
        """Where the run starts (epoch, step within it) and total_steps.

        A checkpoint stores its place in the epoch in images, so a run resumed with another
        world size or batch size restarts at the same place in the same epoch order; total_steps
        is what it takes to finish `epochs` epochs from there with the new global batch.
        """
        steps_per_epoch = self.batches.steps_per_epoch
        global_batch = self.train_config.batch_size * self.world_size
        epoch, in_epoch = 0, 0
        if state is not None:
            epoch = int(state.get("epoch", 0))
            if "images_into_epoch" in state:
                in_epoch = int(state["images_into_epoch"]) // global_batch
            else:
                in_epoch = self.step - epoch * steps_per_epoch
            in_epoch = max(0, min(steps_per_epoch, in_epoch))
            if in_epoch >= steps_per_epoch:
                epoch, in_epoch = epoch + 1, 0
        self.start_epoch, self.start_in_epoch = epoch, in_epoch
        self.total_steps = self.step + max(0, (self.train_config.epochs - epoch) * steps_per_epoch - in_epoch)
        if self.train_config.max_steps is not None:
            self.total_steps = min(self.total_steps, self.train_config.max_steps)

    def dump_weights(self, folder: str | os.PathLike) -> Path:
        """This rank's model and EMA weights to folder/rank{r}.pt (debugging: compare ranks after a run)."""
        path = Path(folder) / f"rank{self.rank}.pt"
        atomic_save({"rank": self.rank, "world_size": self.world_size, "step": self.step,
                     "model": ckpt.model_state(self.model), "ema": ckpt.model_state(self.ema)}, path)
        return path

    # ----------------------------------------------------------------- checkpoints
    def _load_resume_state(self) -> dict:
        found = list_checkpoints(self.run_dir)
        if not found:
            raise TrainingError(f"nothing to resume: no checkpoint in {self.run_dir / 'checkpoints'}")
        errors = []
        for path in reversed(found):  # newest complete, readable one
            try:
                state = read_checkpoint(path)
                if "optimizer" not in state or "model" not in state:
                    raise CheckpointError(f"{path} is a sampling-only checkpoint and cannot resume training")
                ckpt.check_weights(state, "model", path)  # shapes checked before any model is built
                ckpt.check_weights(state, "ema", path)
                self.resume_skipped = errors
                return state
            except CheckpointError as error:
                errors.append(str(error))
        raise TrainingError(f"no usable checkpoint to resume in {self.run_dir / 'checkpoints'}: {errors[0]}")

    def _restore(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
        except Exception as error:
            raise TrainingError(f"checkpoint does not fit this model: {str(error).splitlines()[0][:160]}") from None
        self.step = int(state["step"])
        self.wall_time_before = float(state.get("wall_time_sec", 0.0))
        self.loss_smooth = state.get("loss_smooth")
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def checkpoint_state(self, epoch: int, images_into_epoch: int, elapsed: float) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "kind": ckpt.KIND,
            "format_version": ckpt.FORMAT_VERSION,
            "preset": self.preset,
            **ckpt.config_dicts(self.model_config, self.diffusion_config),
            "train_config": as_dict(self.train_config),
            "model": ckpt.model_state(self.model),
            "ema": ckpt.model_state(self.ema),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": epoch,
            "images_into_epoch": images_into_epoch,
            "loss_smooth": self.loss_smooth,
            "rng": rng,
            "wall_time_sec": elapsed,
            "world_size": self.world_size,
            "global_batch": self.train_config.batch_size * self.world_size,
        }

    def save_checkpoint(self, epoch: int, images_into_epoch: int, elapsed: float) -> Path | None:
        if not self.is_main:
            return None
        path = self.run_dir / CHECKPOINTS / checkpoint_name(self.step)
        try:
            atomic_save(self.checkpoint_state(epoch, images_into_epoch, elapsed), path)
        except OSError as error:
            last = list_checkpoints(self.run_dir)
            kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written"
            message = f"cannot write checkpoint {path}: {error.strerror or error}; {kept}"
            self._write_run_info("failed", error=message)
            raise TrainingError(message) from None
        for old in list_checkpoints(self.run_dir)[: -self.train_config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        self.on_event(TrainEvent("checkpoint", self.step, epoch, {"path": str(path)}))
        return path

    # ----------------------------------------------------------------- helpers
    def _truncate_metrics(self, path: Path) -> None:
        """Drop lines past the step we (re)start from: steps lost to a kill are logged again, once."""
        if not path.exists():
            return
        text = path.read_text()
        lines = text.splitlines()
        kept = []
        for line in lines:
            try:
                if int(json.loads(line)["step"]) <= self.step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a half-written last line from a killed run
        if kept == lines and (not text or text.endswith("\n")):
            return  # nothing to drop: leave the file alone, so a monitor following it just sees appends
        atomic_write_bytes("".join(l + "\n" for l in kept).encode(), path)

    def _update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * w, with warm-up d = min(decay, (1 + step) / (10 + step))."""
        decay = min(self.train_config.ema_decay, (1 + self.step) / (10 + self.step))
        ema_params = list(self.ema.parameters())
        params = [p.detach() for p in self.model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)

    def sample_grid(self, epoch: int) -> Path | None:
        """One row per class from the EMA weights (DDIM 25, guidance 2, seed 0).

        Rank 0 draws it; in a distributed run the other ranks wait for it at a barrier.
        """
        if self.train_config.sample_grid_per_class <= 0:
            return None
        if not self.is_main:
            distributed.barrier(self.device)
            return None
        try:
            return self._draw_sample_grid(epoch)
        finally:
            if self.world_size > 1:
                distributed.barrier(self.device)

    def _draw_sample_grid(self, epoch: int) -> Path:
        from .images import make_grid, save_png, to_pil
        from .sampling import SampleRequest, sample

        per_class = self.train_config.sample_grid_per_class
        generator = ckpt.Generator(self.ema, self.model_config, self.diffusion_config, None, "training", {})
        chunks = []
        for first in range(0, NUM_CLASSES, 5):  # 5 classes per call keeps n within the sampler's limit
            rows = [[1.0 if i == c else 0.0 for i in range(NUM_CLASSES)] for c in range(first, first + 5) for _ in range(per_class)]
            request = SampleRequest(rows[0], n=len(rows), sampler="ddim", steps=25, seed=first, per_item_weights=rows)
            chunks.append(sample(generator, request))
        images = torch.cat(chunks)
        path = self.run_dir / SAMPLES / sample_name(epoch)
        save_png(to_pil(make_grid(images, per_class), "grey", SAMPLE_SCALE), path,
                 {"kind": "training-samples", "epoch": epoch, "step": self.step, "rows": "one per class 0-9"})
        self.on_event(TrainEvent("samples", self.step, epoch, {"path": str(path)}))
        return path

    def _write_run_info(self, state: str, **extra) -> None:
        if not self.is_main:
            return
        info_path = self.run_dir / RUN_INFO
        info = {}
        if info_path.exists():
            try:
                info = json.loads(info_path.read_text())
            except ValueError:
                info = {}
        info.update({
            "state": state,
            "preset": self.preset,
            "device": str(self.device),
            "world_size": self.world_size,
            "global_batch": self.train_config.batch_size * self.world_size,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "total_steps": self.total_steps,
            "epochs": self.train_config.epochs,
            "model_config": as_dict(self.model_config),
            "diffusion_config": as_dict(self.diffusion_config),
            "train_config": as_dict(self.train_config),
            "pid": os.getpid(),
            "updated": time.time(),
            **extra,
        })
        write_json(info_path, info)

    # ----------------------------------------------------------------- the loop
    def run(self) -> dict:
        config, batches = self.train_config, self.batches
        steps_per_epoch = batches.steps_per_epoch
        global_batch = config.batch_size * self.world_size
        epoch, start_in_epoch = self.start_epoch, self.start_in_epoch
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_run_info("running", started=time.time())
        metrics_path = self.run_dir / METRICS
        if self.is_main:
            self._truncate_metrics(metrics_path)
        metrics = open(metrics_path, "a", buffering=1) if self.is_main else None
        self.on_event(TrainEvent("start", self.step, epoch, {
            "device": str(self.device), "total_steps": self.total_steps, "steps_per_epoch": steps_per_epoch,
            "global_batch": global_batch, "world_size": self.world_size, "run_dir": str(self.run_dir),
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }))
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else torch.autocast("cpu", enabled=False)
        run_start = time.perf_counter()
        window_start, window_images = run_start, 0
        last_checkpoint_step = self.step
        last_images_into_epoch = start_in_epoch * global_batch
        identity = torch.eye(NUM_CLASSES, device=self.device)
        outcome = "finished"
        self.model.train()

        def elapsed() -> float:
            return self.wall_time_before + time.perf_counter() - run_start

        try:
            while self.step < self.total_steps:
                for in_epoch, (x0, labels) in enumerate(batches.batches(epoch, start_in_epoch), start=start_in_epoch):
                    if not self._resume_allowed.is_set():
                        paused_at = time.perf_counter()
                        self._resume_allowed.wait()
                        run_start += time.perf_counter() - paused_at  # paused time is not training time
                        window_start = time.perf_counter()
                        window_images = 0
                    if self.world_size == 1 and self._stop.is_set():
                        outcome = "stopped"
                        break
                    lr = lr_at(self.step, self.total_steps, config)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    if self.device.type == "cuda":
                        x0 = x0.contiguous(memory_format=torch.channels_last)
                    with autocast:
                        loss = self.step_fn(x0, identity[labels])
                    loss_value, finite, stop = self._agree(loss)
                    if not finite:
                        last = list_checkpoints(self.run_dir)
                        kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written yet"
                        self._write_run_info("failed", error=f"loss became {loss_value} at step {self.step + 1}")
                        raise TrainingError(f"loss became {loss_value} at step {self.step + 1}; stopped, {kept}")
                    if stop:  # distributed: every rank saw the flag in the same all-reduce; this step is dropped
                        outcome = "stopped"
                        self.stop_reason = self.stop_reason or "a stop on another rank"
                        break
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
                    self.optimizer.step()
                    self._update_ema()
                    self.step += 1
                    window_images += x0.shape[0] * self.world_size
                    self.loss_smooth = loss_value if self.loss_smooth is None else 0.98 * self.loss_smooth + 0.02 * loss_value
                    last_images_into_epoch = (in_epoch + 1) * global_batch

                    if self.step % config.log_every == 0 or self.step == self.total_steps:
                        now = time.perf_counter()
                        rate = window_images / max(1e-9, now - window_start)
                        window_start, window_images = now, 0
                        remaining = (self.total_steps - self.step) * global_batch / max(rate, 1e-9)
                        record = {
                            "step": self.step, "epoch": epoch + (in_epoch + 1) / steps_per_epoch,
                            "loss": loss_value, "loss_smooth": self.loss_smooth, "lr": lr,
                            "grad_norm": float(grad_norm), "images_per_sec": rate,
                            "elapsed_sec": elapsed(), "eta_sec": remaining, "total_steps": self.total_steps,
                            "time": time.time(),
                        }
                        if metrics is not None:
                            metrics.write(json.dumps(record) + "\n")
                        self.on_event(TrainEvent("log", self.step, epoch, record))
                    if config.checkpoint_every and self.step - last_checkpoint_step >= config.checkpoint_every:
                        self.save_checkpoint(epoch, last_images_into_epoch, elapsed())
                        last_checkpoint_step = self.step
                    if self.step >= self.total_steps:
                        break
                if outcome == "stopped":
                    break
                epoch_finished = last_images_into_epoch >= steps_per_epoch * global_batch
                if epoch_finished:
                    epoch += 1
                    start_in_epoch, last_images_into_epoch = 0, 0
                    if self.step != last_checkpoint_step:
                        self.save_checkpoint(epoch, 0, elapsed())
                        last_checkpoint_step = self.step
                    self.on_event(TrainEvent("epoch", self.step, epoch, {"elapsed_sec": elapsed()}))
                    self.sample_grid(epoch)
                else:
                    start_in_epoch = last_images_into_epoch // global_batch
            path = None
            if self.step != last_checkpoint_step or not list_checkpoints(self.run_dir):
                path = self.save_checkpoint(epoch, last_images_into_epoch, elapsed())
            newest = list_checkpoints(self.run_dir)
            path = path or (newest[-1] if newest else None)
            self._write_run_info(outcome, finished=time.time(), step=self.step, wall_time_sec=elapsed())
            result = {"outcome": outcome, "step": self.step, "epoch": epoch, "checkpoint": str(path) if path else None,
                      "metrics": str(metrics_path), "wall_time_sec": elapsed(), "reason": self.stop_reason}
            self.on_event(TrainEvent(outcome, self.step, epoch, result))
            return result
        finally:
            if metrics is not None:
                metrics.close()
