"""Follow a run directory written by core.training.trainer (this process or another) by polling its files.

Nothing here raises on a file that is missing, half-written, replaced or deleted: `poll()`
always returns a snapshot, and `notes` say in words what was seen. No Textual, no torch
(sample grids are read with Pillow, in the monitor's worker thread).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.training.rundir import CHECKPOINTS, METRICS, RUN_INFO, SAMPLE_PATTERN, SAMPLE_SCALE, SAMPLES, checkpoint_names

from .pixels import downscale_nearest

THUMBNAIL_SIZES = (28, 14, 10, 7)  # item sizes (pixels) the monitor may show, largest that fits first


@dataclass(frozen=True)
class SampleGrid:
    path: Path
    epoch: int
    width: int  # pixels, at 1x
    height: int
    per_class: int  # items per row (one row per class)
    # size -> one tuple per class row of that many items, each size x size grey levels (area-averaged)
    thumbnails: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunSnapshot:
    run_dir: Path
    exists: bool
    info: dict  # run.json, {} when missing or unreadable
    steps: tuple[int, ...] = ()
    loss: tuple[float, ...] = ()
    loss_smooth: tuple[float, ...] = ()
    latest: dict = field(default_factory=dict)  # the newest metrics record
    checkpoints: tuple[str, ...] = ()  # file names, oldest first
    sample: SampleGrid | None = None
    notes: tuple[str, ...] = ()  # what looks wrong or is missing, in words
    version: int = 0  # grows whenever anything above changed


def newest_checkpoint(run_dir: Path) -> Path | None:
    names = checkpoint_names(run_dir)
    return run_dir / CHECKPOINTS / names[-1] if names else None


def read_sample_grid(path: Path) -> SampleGrid | None:
    """A training sample grid PNG as 1x grey pixels; None if it cannot be read (yet)."""
    from PIL import Image

    match = SAMPLE_PATTERN.match(path.name)
    try:
        with Image.open(path) as image:
            grey = image.convert("L")
            width, height, data = grey.width, grey.height, grey.tobytes()
        pixels, width, height = downscale_nearest(data, width, height, SAMPLE_SCALE)
        per_class = max(1, (width - 2) // 30)  # make_grid: 28px items with 2px padding
        rows = max(0, (height - 2) // 30)
        one_x = Image.frombytes("L", (width, height), pixels)
        thumbnails = {size: tuple(tuple(_item(one_x, row, column, size) for column in range(per_class)) for row in range(rows))
                      for size in THUMBNAIL_SIZES}
    except Exception:
        return None
    return SampleGrid(path, int(match.group(1)) if match else 0, width, height, per_class, thumbnails)


def _item(grid, row: int, column: int, size: int) -> bytes:
    """One 28px item of a make_grid image (2px padding), resized to size x size by area averaging."""
    from PIL import Image

    left, top = 2 + 30 * column, 2 + 30 * row
    item = grid.crop((left, top, left + 28, top + 28))
    return (item if size == 28 else item.resize((size, size), Image.BOX)).tobytes()


class RunTailer:
    """Incrementally reads metrics.jsonl; call poll() as often as you like."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file being read
        self._offset = 0
        self._damaged = 0
        self._steps: list[int] = []
        self._loss: list[float] = []
        self._smooth: list[float] = []
        self._latest: dict = {}
        self._sample_key: tuple[str, float] | None = None
        self._sample: SampleGrid | None = None
        self._last: RunSnapshot | None = None
        self._version = 0
        self._events: list[str] = []  # one-off notes (file replaced...), shown once

    def _reset_metrics(self) -> None:
        self._offset, self._damaged = 0, 0
        self._steps, self._loss, self._smooth, self._latest = [], [], [], {}

    def _read_metrics(self, notes: list[str]) -> None:
        path = self.run_dir / METRICS
        try:
            stat = path.stat()
        except OSError:
            if self._identity is not None:
                self._events.append("metrics.jsonl disappeared; keeping what was read")
                self._identity = None
            notes.append("no metrics.jsonl yet")
            return
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is not None and (identity != self._identity or stat.st_size < self._offset):
            self._events.append("metrics.jsonl was replaced or truncated; reading it again from the start")
            self._reset_metrics()
        self._identity = identity
        if stat.st_size == self._offset:
            return
        try:
            with open(path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError as error:
            notes.append(f"cannot read metrics.jsonl: {error.strerror or error}")
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return  # only a half-written line so far
        self._offset += end + 1
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step, loss = int(record["step"]), float(record["loss"])
                smooth = float(record.get("loss_smooth", loss))
            except (ValueError, KeyError, TypeError):
                self._damaged += 1
                continue
            self._steps.append(step)
            self._loss.append(loss)
            self._smooth.append(smooth)
            self._latest = record

    def _read_info(self, notes: list[str]) -> dict:
        try:
            info = json.loads((self.run_dir / RUN_INFO).read_text())
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            notes.append("no run.json yet")
        except (OSError, ValueError):
            notes.append("run.json is unreadable (being rewritten?)")
        return {}

    def _read_sample(self) -> None:
        folder = self.run_dir / SAMPLES
        try:
            names = sorted(name for name in os.listdir(folder) if SAMPLE_PATTERN.match(name))
        except OSError:
            names = []
        if not names:
            self._sample_key, self._sample = None, None
            return
        path = folder / names[-1]
        try:
            key = (path.name, path.stat().st_mtime)
        except OSError:
            return
        if key != self._sample_key:
            grid = read_sample_grid(path)
            if grid is not None:
                self._sample_key, self._sample = key, grid

    def poll(self) -> RunSnapshot:
        notes: list[str] = []
        exists = self.run_dir.is_dir()
        if not exists:
            notes.append(f"run directory {self.run_dir} does not exist (removed?); waiting for it")
            info = {}
            if self._identity is not None:
                self._identity = None
        else:
            info = self._read_info(notes)
            self._read_metrics(notes)
            self._read_sample()
        if self._damaged:
            notes.append(f"skipped {self._damaged} damaged line(s) in metrics.jsonl")
        notes.extend(self._events)
        self._events.clear()
        snapshot = RunSnapshot(
            run_dir=self.run_dir, exists=exists, info=info,
            steps=tuple(self._steps), loss=tuple(self._loss), loss_smooth=tuple(self._smooth),
            latest=dict(self._latest), checkpoints=tuple(checkpoint_names(self.run_dir)) if exists else (),
            sample=self._sample, notes=tuple(notes), version=self._version,
        )
        if self._last is None or _changed(self._last, snapshot):
            self._version += 1
            snapshot = _with_version(snapshot, self._version)
        self._last = snapshot
        return snapshot


def _changed(old: RunSnapshot, new: RunSnapshot) -> bool:
    return (old.exists, old.info, len(old.steps), old.checkpoints, old.sample, old.notes, old.latest) != \
           (new.exists, new.info, len(new.steps), new.checkpoints, new.sample, new.notes, new.latest)


def _with_version(snapshot: RunSnapshot, version: int) -> RunSnapshot:
    from dataclasses import replace

    return replace(snapshot, version=version)
