"""Follow a run directory written by core.training.trainer (this process or another) by polling its
files: metrics.jsonl, quality.jsonl, run.json, checkpoints and sample grids; and list the runs under a
runs folder for the compare view.

Nothing here raises on a file that is missing, half-written, replaced or deleted: `poll()`
always returns a snapshot, and `notes` say in words what was seen. No Textual, no torch
(sample grids are read with Pillow, in the monitor's worker thread).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.training.rundir import (
    CHECKPOINTS, METRICS, QUALITY, RUN_INFO, SAMPLE_PATTERN, SAMPLE_SCALE, SAMPLES, checkpoint_names,
)

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
    elapsed: tuple[float, ...] = ()  # training seconds at each record (NaN where a record has none)
    rates: tuple[float, ...] = ()  # images/s at each record
    quality: tuple[dict, ...] = ()  # quality.jsonl's records (core.evaluation.probe), oldest first
    latest: dict = field(default_factory=dict)  # the newest metrics record
    checkpoints: tuple[str, ...] = ()  # file names, oldest first
    sample: SampleGrid | None = None
    notes: tuple[str, ...] = ()  # what looks wrong or is missing, in words
    version: int = 0  # grows whenever anything above changed


def newest_checkpoint(run_dir: Path) -> Path | None:
    names = checkpoint_names(run_dir)
    return run_dir / CHECKPOINTS / names[-1] if names else None


def list_runs(root: Path) -> list[Path]:
    """The run directories directly under `root` (folders holding run.json or metrics.jsonl), by name;
    [] when root is missing or unreadable. Folders that vanish while being looked at are left out."""
    try:
        folders = sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:
        return []
    return [folder for folder in folders if (folder / RUN_INFO).is_file() or (folder / METRICS).is_file()]


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


def _metric(record: dict) -> tuple[int, float, float, float, float]:
    """(step, loss, loss_smooth, elapsed_sec, images_per_sec) of a metrics.jsonl record; NaN where absent."""
    step, loss = int(record["step"]), float(record["loss"])
    return (step, loss, float(record.get("loss_smooth", loss)), float(record.get("elapsed_sec", math.nan)),
            float(record.get("images_per_sec", math.nan)))


def _quality(record: dict) -> dict:
    """A quality.jsonl record with the fields the charts read checked: step, accuracy, KID."""
    record["step"] = int(record["step"])
    for key in ("accuracy", "kid"):
        if record.get(key) is not None:
            record[key] = float(record[key])
    return record


class JsonlTail:
    """The complete lines appended to one JSONL file since the last read, parsed by `parse` (a
    record -> a row; ValueError, KeyError or TypeError mark the line damaged). A file replaced or
    cut shorter is read again from the start; a missing one keeps what was read."""

    def __init__(self, path: Path, parse):
        self.path, self.parse = path, parse
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file being read
        self._offset = 0
        self.rows: list = []
        self.latest: dict = {}  # the newest good record
        self.damaged = 0

    def read(self, notes: list[str], events: list[str], missing: str | None) -> None:
        """Read what was appended; `missing` is the note for a file not there yet (None: no note)."""
        name = self.path.name
        try:
            stat = self.path.stat()
        except OSError:
            if self._identity is not None:
                events.append(f"{name} disappeared; keeping what was read")
                self._identity = None
            if missing:
                notes.append(missing)
            return
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is not None and (identity != self._identity or stat.st_size < self._offset):
            events.append(f"{name} was replaced or truncated; reading it again from the start")
            self._offset, self.damaged, self.rows, self.latest = 0, 0, [], {}
        self._identity = identity
        if stat.st_size == self._offset:
            return
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError as error:
            notes.append(f"cannot read {name}: {error.strerror or error}")
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
                row = self.parse(record)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.damaged += 1
                continue
            self.rows.append(row)
            self.latest = record


class RunTailer:
    """Incrementally reads metrics.jsonl and quality.jsonl; call poll() as often as you like.
    samples=False skips the sample grids (the compare view draws only curves)."""

    def __init__(self, run_dir: str | os.PathLike, samples: bool = True):
        self.run_dir = Path(run_dir)
        self.samples = samples
        self._metrics = JsonlTail(self.run_dir / METRICS, _metric)
        self._quality = JsonlTail(self.run_dir / QUALITY, _quality)
        self._sample_key: tuple[str, float] | None = None
        self._sample: SampleGrid | None = None
        self._last: RunSnapshot | None = None
        self._version = 0
        self._events: list[str] = []  # one-off notes (file replaced...), shown once

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
            self._metrics._identity = self._quality._identity = None
        else:
            info = self._read_info(notes)
            self._metrics.read(notes, self._events, "no metrics.jsonl yet")
            self._quality.read(notes, self._events, None)
            if self.samples:
                self._read_sample()
        for tail in (self._metrics, self._quality):
            if tail.damaged:
                notes.append(f"skipped {tail.damaged} damaged line(s) in {tail.path.name}")
        notes.extend(self._events)
        self._events.clear()
        columns = list(zip(*self._metrics.rows)) or [()] * 5
        snapshot = RunSnapshot(
            run_dir=self.run_dir, exists=exists, info=info,
            steps=tuple(columns[0]), loss=tuple(columns[1]), loss_smooth=tuple(columns[2]),
            elapsed=tuple(columns[3]), rates=tuple(columns[4]), quality=tuple(self._quality.rows),
            latest=dict(self._metrics.latest), checkpoints=tuple(checkpoint_names(self.run_dir)) if exists else (),
            sample=self._sample, notes=tuple(notes), version=self._version,
        )
        if self._last is None or _changed(self._last, snapshot):
            self._version += 1
            snapshot = _with_version(snapshot, self._version)
        self._last = snapshot
        return snapshot


def _changed(old: RunSnapshot, new: RunSnapshot) -> bool:
    return (old.exists, old.info, len(old.steps), len(old.quality), old.checkpoints, old.sample, old.notes, old.latest) != \
           (new.exists, new.info, len(new.steps), len(new.quality), new.checkpoints, new.sample, new.notes, new.latest)


def _with_version(snapshot: RunSnapshot, version: int) -> RunSnapshot:
    from dataclasses import replace

    return replace(snapshot, version=version)
