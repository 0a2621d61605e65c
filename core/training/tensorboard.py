"""A run's events as TensorBoard event files (`fashion-train --tensorboard [DIR]`, the app's
`--tensorboard`), written with torch.utils.tensorboard's SummaryWriter into run_dir/tb/ or DIR:

    train/loss, train/loss_smooth, train/lr, train/grad_norm, train/images_per_sec   each log record
    quality/accuracy, quality/kid, quality/worst_class_accuracy, quality_per_class/NAME   each probe
    quality/worst_class (text), samples (the epoch's sample grid, an image)   each epoch's end
    config (text: the preset and the three configs)   each start, at the step it starts from

The x axis is the optimizer step. The trainer hands its events to `TensorBoardLog.follow` (rank 0
only) and closes it when run() ends; nothing in the loop waits for the writer, whose queue is
written by its own thread. A resumed run opens a new event file in the same folder whose start
purges the steps after the one it resumes from, so steps a killed run logged past its checkpoint
are shown once, from the run that trained them again.

The tensorboard package is an optional extra: `missing()` says so in one line before a run starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from ..classes import CLASS_NAMES, SHORT_NAMES
from ..model.config import as_dict
from .rundir import TENSORBOARD

EXTRA = 'pip install -e ".[tensorboard]"'
MISSING = f"--tensorboard needs the tensorboard package, an optional extra: {EXTRA}"
LOG_SCALARS = ("loss", "loss_smooth", "lr", "grad_norm", "images_per_sec")  # from each "log" event's record
FLUSH_SECONDS = 30  # a TensorBoard open beside a long epoch shows its log records this late at most


def missing() -> str | None:
    """MISSING when the tensorboard package cannot be imported, else None (imports no torch)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return MISSING
    return None


class TensorBoardLog:
    """Build with the folder (None: run_dir/tb), give it to Trainer(tensorboard=...); the folder and
    its first event file are made when the run starts."""

    def __init__(self, log_dir: str | os.PathLike | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError(MISSING) from None
        self._writer_class = SummaryWriter
        self.log_dir = Path(log_dir) if log_dir else None
        self.writer = None
        self._setup = None

    def follow(self, trainer, on_event: Callable) -> Callable:
        """on_event with this log in front of it, for `trainer`'s events (and its probe's)."""
        self._setup = trainer.setup
        if self.log_dir is None:
            self.log_dir = trainer.run_dir / TENSORBOARD

        def both(event) -> None:
            self.record(event)
            on_event(event)

        return both

    def record(self, event) -> None:
        """Write what a core.training.trainer.TrainEvent holds for TensorBoard; other kinds pass."""
        if event.kind == "start":
            self._open(event.step)
        if self.writer is None:
            return
        data = event.data
        if event.kind == "log":
            for name in LOG_SCALARS:
                self.writer.add_scalar(f"train/{name}", data[name], event.step)
        elif event.kind == "quality":
            self._quality(data, event.step)
        elif event.kind == "samples":
            self._image(Path(data["path"]), event.step)

    def _open(self, step: int) -> None:
        # purge_step: steps after the one resumed from, logged by an earlier (killed) process, are hidden
        self.close()
        self.writer = self._writer_class(str(self.log_dir), purge_step=step + 1 if step else None,
                                         flush_secs=FLUSH_SECONDS)
        setup = self._setup
        config = {"preset": setup.preset, "world_size": setup.world_size, "global_batch": setup.global_batch,
                  "device": str(setup.device), "model_config": as_dict(setup.model_config),
                  "diffusion_config": as_dict(setup.diffusion_config), "train_config": as_dict(setup.train_config)}
        indented = "\n".join("    " + line for line in json.dumps(config, indent=2).splitlines())  # markdown code
        self.writer.add_text("config", indented, step)

    def _quality(self, record: dict, step: int) -> None:
        self.writer.add_scalar("quality/accuracy", record["accuracy"], step)
        self.writer.add_scalar("quality/kid", record["kid"], step)
        scored = [(value, index) for index, value in enumerate(record["per_class_accuracy"]) if value is not None]
        for value, index in scored:
            self.writer.add_scalar(f"quality_per_class/{SHORT_NAMES[index]}", value, step)
        if scored:
            value, index = min(scored)
            self.writer.add_scalar("quality/worst_class_accuracy", value, step)
            self.writer.add_text("quality/worst_class", f"{CLASS_NAMES[index]} {100 * value:.0f}%", step)
        self.writer.flush()

    def _image(self, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))  # (H, W), one row of items per class
        self.writer.add_image("samples", grey, step, dataformats="HW")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
