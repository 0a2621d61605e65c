"""The run directory a training writes and the monitor reads, from this process or another
(no torch: the TUI's monitor imports it):

    run_dir/run.json                     configs, device, world size, state
    run_dir/metrics.jsonl                one JSON object per logged step
    run_dir/quality.jsonl                one JSON object per quality probe (core.evaluation.probe)
    run_dir/checkpoints/step-XXXXXXX.pt  written atomically, the newest few kept
    run_dir/posthoc/step-XXXXXXX.pt      post-hoc EMA snapshots (core.training.posthoc_ema): one per
                                         checkpoint of a run with --posthoc-ema, all kept
    run_dir/samples/epoch-XXX.png        one row per class, scaled x SAMPLE_SCALE
    run_dir/pairs/shard-XXXXX.pt         a student's distillation only: its teacher's pairs (core.training.pairs)
    run_dir/student.pt                   ... and the student as a sampling checkpoint, written as it ends
    run_dir/tb/                          TensorBoard event files, with --tensorboard (core.training.tensorboard)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
QUALITY = "quality.jsonl"
CHECKPOINTS = "checkpoints"
POSTHOC = "posthoc"
SAMPLES = "samples"
PAIRS = "pairs"
STUDENT_EXPORT = "student.pt"
TENSORBOARD = "tb"  # --tensorboard's folder when it names none
CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)\.pt$")
SAMPLE_PATTERN = re.compile(r"^epoch-(\d+)\.png$")
SAMPLE_SCALE = 2  # sample grids are written at 2x, so they are legible in an image viewer


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}.pt"


def sample_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}.png"


def snapshot_name(step: int) -> str:
    """A post-hoc EMA snapshot is named like the checkpoint written with it."""
    return checkpoint_name(step)


def step_of(path: str | os.PathLike) -> int:
    """The step in a checkpoint's or snapshot's file name (step-0000042.pt -> 42)."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not named like step-XXXXXXX.pt")
    return int(match.group(1))


def _step_files(folder: Path) -> list[str]:
    """Names in folder matching step-XXXXXXX.pt, oldest first (temp files of interrupted writes
    are not named like that); [] when the folder is missing or unreadable."""
    try:
        names = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := CHECKPOINT_PATTERN.match(name))]
    except OSError:
        return []
    return [name for _, name in sorted(names)]


def checkpoint_names(run_dir: str | os.PathLike) -> list[str]:
    """File names of a run's complete checkpoints, oldest first; [] when there are none."""
    return _step_files(Path(run_dir) / CHECKPOINTS)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint files of a run, oldest first."""
    return [Path(run_dir) / CHECKPOINTS / name for name in checkpoint_names(run_dir)]


def list_snapshots(run_dir: str | os.PathLike) -> list[Path]:
    """Complete post-hoc EMA snapshot files of a run, oldest first."""
    folder = Path(run_dir) / POSTHOC
    return [folder / name for name in _step_files(folder)]
