"""A trainer's state in its checkpoints: which one a run resumes from, where in the epochs that
puts it, and moving the weights, optimizer and RNG into a checkpoint and back out.

A training checkpoint holds what a generator needs (core.checkpoint: the configs, the preset,
"ema") and what resuming reads:

    "model", "optimizer"            live weights and AdamW moments (the generator samples from "ema")
    "step", "epoch"                 optimizer steps taken; the epoch the next step is in
    "images_into_epoch"             the place in that epoch in images, so any global batch can resume it
    "rng": {"torch", "cuda"?}       rank 0's stream of timesteps, noise and CFG drops
    "loss_smooth", "wall_time_sec"
    "world_size", "global_batch"    how it was trained (not read back)
    "posthoc_ema"                   only with TrainConfig.posthoc_ema: {"sigma_rels", "profiles"}, the
                                    power-function EMA copies (core.training.posthoc_ema); writing such a
                                    checkpoint also writes their snapshot to run_dir/posthoc/

The trainer owns a RunSetup (how it trains) and hands it, with its weights, optimizer and
counters, to capture(); restore() hands the counters back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from . import distributed, posthoc_ema
from ..checkpoint import CheckpointError, atomic_save, read_checkpoint
from ..model.config import PRESETS, DiffusionConfig, ModelConfig, TrainConfig, as_dict
from ..model.config import from_dict as config_from_dict
from .rundir import CHECKPOINTS, checkpoint_name, list_checkpoints

class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad resume); one line, says what was kept."""


@dataclass(frozen=True)
class RunSetup:
    """How a run trains, as its checkpoints and run.json record it beside the weights."""

    preset: str
    model_config: ModelConfig
    diffusion_config: DiffusionConfig
    train_config: TrainConfig
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def global_batch(self) -> int:
        """Images per optimizer step over all ranks."""
        return self.train_config.batch_size * self.world_size


def newest_resumable(run_dir: Path) -> tuple[dict, list[str]]:
    """(the newest checkpoint that can resume training, why each newer one could not).

    Weight shapes are checked against the stored configs here, before any model is built, so a
    small file that declares a huge network is refused before it is built."""
    found = list_checkpoints(run_dir)
    if not found:
        raise TrainingError(f"nothing to resume: no checkpoint in {run_dir / CHECKPOINTS}")
    errors = []
    for path in reversed(found):  # newest complete, readable one
        try:
            state = read_checkpoint(path)
            if "optimizer" not in state or "model" not in state:
                raise CheckpointError(f"{path} is a sampling-only checkpoint and cannot resume training")
            ckpt.check_weights(state, "model", path)
            ckpt.check_weights(state, "ema", path)
            if "posthoc_ema" in state:
                posthoc_ema.check_tracked(state, path)
            return state, errors
        except CheckpointError as error:
            errors.append(str(error))
    raise TrainingError(f"no usable checkpoint to resume in {run_dir / CHECKPOINTS}: {errors[0]}")


def startup_state(run_dir: Path, resume: bool, is_main: bool, world_size: int) -> tuple[dict | None, list[str] | None]:
    """(the state this run starts from or None for a fresh run, the checkpoints skipped on the way
    or None where nothing was read).

    Rank 0 alone checks the run directory (no clobbering; newest usable checkpoint) and sends the
    verdict and the state to the other ranks, so every rank fails alike and the run directory
    need not be visible from other machines; only rank 0 gets the skipped list."""
    verdict, skipped = None, None
    if is_main:
        try:
            if not resume:
                if list_checkpoints(run_dir):
                    raise TrainingError(f"{run_dir} already holds checkpoints: add --resume to continue it, "
                                        f"or pick a new --run-dir")
                verdict = ("ok", None)
            else:
                state, skipped = newest_resumable(run_dir)
                verdict = ("ok", state)
        except TrainingError as error:
            verdict = ("error", str(error))
    if world_size > 1:
        verdict = distributed.broadcast_object(verdict)
    if verdict[0] == "error":
        raise TrainingError(verdict[1])
    return verdict[1], skipped


def run_configs(state: dict | None, as_trained: bool, run_dir: Path, train_config: TrainConfig,
                model_config: ModelConfig | None, diffusion_config: DiffusionConfig | None,
                preset: str) -> tuple[TrainConfig, ModelConfig, DiffusionConfig, str]:
    """(train, model and diffusion configs, preset) a run trains with.

    A resumed run takes its model, diffusion config and preset from the checkpoint, and with
    as_trained (the app's monitor) every TrainConfig field but device too; train_cli passes its
    flags. A resumed run keeps the post-hoc EMA profiles it tracks (tracked_profiles). A fresh run
    fills what it was not given from the preset.
    """
    if state is not None and as_trained:
        try:
            saved = config_from_dict(TrainConfig, state.get("train_config", {}))
        except (TypeError, ValueError) as error:
            raise TrainingError(f"the newest checkpoint in {run_dir / CHECKPOINTS} has an unusable train "
                                f"config: {str(error).splitlines()[0][:160]}") from None
        train_config = replace(saved, device=train_config.device)
    if state is not None:
        train_config = tracked_profiles(state, train_config)
        model_config = config_from_dict(ModelConfig, state["model_config"])
        diffusion_config = config_from_dict(DiffusionConfig, state["diffusion_config"])
        preset = state.get("preset", preset)
    if model_config is None or diffusion_config is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        model_config = model_config or PRESETS[preset].model
        diffusion_config = diffusion_config or PRESETS[preset].diffusion
    return train_config, model_config, diffusion_config, preset


def tracked_profiles(state: dict, train_config: TrainConfig) -> TrainConfig:
    """train_config with the post-hoc EMA profiles the resumed checkpoint tracks, when a resumed
    run does not name them; TrainingError (one line) when it names others. Profiles can neither
    start nor change mid-run: each averages the run from its first step."""
    tracked = tuple(float(s) for s in (state.get("posthoc_ema") or {}).get("sigma_rels", ()))
    asked = tuple(train_config.posthoc_ema)
    if not asked or sorted(asked) == sorted(tracked):
        return replace(train_config, posthoc_ema=tracked)  # in the checkpoint's order, that of its profiles
    listed = ",".join(f"{s:g}" for s in asked)
    if not tracked:
        raise TrainingError(f"--posthoc-ema {listed}: this run was not tracking post-hoc EMA profiles, and they "
                            f"cannot start mid-run (start a new run with it, or resume without it)")
    raise TrainingError(f"--posthoc-ema {listed}: this run tracks {','.join(f'{s:g}' for s in tracked)}, and "
                        f"profiles cannot change mid-run (resume without the flag, or with the same values)")


def plan_position(state: dict | None, step: int, steps_per_epoch: int, global_batch: int, epochs: int,
                  max_steps: int | None) -> tuple[int, int, int]:
    """(epoch, step within it, total_steps) for a run at `step` that resumes `state` (None: fresh).

    The place in the epoch is stored in images, so a run resumed with another world size or batch
    size restarts at the same place in the same epoch order; total_steps is what it takes to finish
    `epochs` epochs from there with the new global batch. A checkpoint without images_into_epoch
    is placed by its step and epoch.
    """
    epoch, in_epoch = 0, 0
    if state is not None:
        epoch = int(state.get("epoch", 0))
        if "images_into_epoch" in state:
            in_epoch = int(state["images_into_epoch"]) // global_batch
        else:
            in_epoch = step - epoch * steps_per_epoch
        in_epoch = max(0, min(steps_per_epoch, in_epoch))
        if in_epoch >= steps_per_epoch:
            epoch, in_epoch = epoch + 1, 0
    total_steps = step + max(0, (epochs - epoch) * steps_per_epoch - in_epoch)
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    return epoch, in_epoch, total_steps


def capture(setup: RunSetup, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer,
            step: int, loss_smooth: float | None, epoch: int, images_into_epoch: int, elapsed: float,
            posthoc: posthoc_ema.PosthocEMA | None = None) -> dict:
    """A training checkpoint (the keys above) of these weights and counters, at `epoch` and
    `images_into_epoch`, after `elapsed` seconds of training in all; "posthoc_ema" only when
    `posthoc` tracks profiles."""
    rng = {"torch": torch.get_rng_state()}
    if setup.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(setup.device)
    return {
        "kind": ckpt.KIND,
        "format_version": ckpt.FORMAT_VERSION,
        "preset": setup.preset,
        **ckpt.config_dicts(setup.model_config, setup.diffusion_config),
        "train_config": as_dict(setup.train_config),
        "model": ckpt.model_state(model),
        "ema": ckpt.model_state(ema),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch": epoch,
        "images_into_epoch": images_into_epoch,
        "loss_smooth": loss_smooth,
        "rng": rng,
        "wall_time_sec": elapsed,
        "world_size": setup.world_size,
        "global_batch": setup.global_batch,
        **({"posthoc_ema": posthoc.state()} if posthoc is not None and posthoc.tracking else {}),
    }


def restore(state: dict, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer,
            device: torch.device, posthoc: posthoc_ema.PosthocEMA | None = None) -> tuple[int, float, float | None]:
    """A checkpoint's weights, optimizer and RNG into a model, EMA, optimizer and post-hoc EMA
    profiles built from its configs; (step, training seconds so far, smoothed loss). The place in
    the epoch is plan_position's; a CUDA RNG state is ignored off the GPU."""
    try:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if posthoc is not None and posthoc.tracking:
            posthoc.load_state(state.get("posthoc_ema", {}))
    except Exception as error:
        raise TrainingError(f"checkpoint does not fit this model: {str(error).splitlines()[0][:160]}") from None
    rng = state.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    return int(state["step"]), float(state.get("wall_time_sec", 0.0)), state.get("loss_smooth")


def write_checkpoint(state: dict, run_dir: Path, step: int, keep: int) -> Path:
    """run_dir/checkpoints/step-XXXXXXX.pt, written atomically; then all but the newest `keep` go,
    and a state holding "posthoc_ema" writes its snapshot, run_dir/posthoc/step-XXXXXXX.pt (all kept).

    A failed write (a full disk) leaves the older checkpoints as they were and raises one line that
    names the last good one."""
    path = run_dir / CHECKPOINTS / checkpoint_name(step)
    try:
        atomic_save(state, path)
    except OSError as error:
        last = list_checkpoints(run_dir)
        kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written"
        raise TrainingError(f"cannot write checkpoint {path}: {error.strerror or error}; {kept}") from None
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    if "posthoc_ema" in state and step > 0:  # step 0 averages nothing: no profile is defined there
        try:
            posthoc_ema.write_snapshot(run_dir, posthoc_ema.snapshot_of(state))
        except OSError as error:
            raise TrainingError(f"cannot write the post-hoc EMA snapshot of step {step}: {error.strerror or error}; "
                                f"checkpoint {path} was written") from None
    return path


def dump_weights(setup: RunSetup, model: torch.nn.Module, ema: torch.nn.Module, step: int, folder: Path) -> Path:
    """This rank's live and EMA weights to folder/rank{r}.pt."""
    path = folder / f"rank{setup.rank}.pt"
    atomic_save({"rank": setup.rank, "world_size": setup.world_size, "step": step,
                 "model": ckpt.model_state(model), "ema": ckpt.model_state(ema)}, path)
    return path
