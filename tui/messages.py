"""Messages that workers post to screens. Workers never touch widgets; they post one of these.

Each is a dataclass (Textual's Message runs dataclass initialisation through __post_init__).
Frequent progress messages define `can_replace`, so a fast producer never queues more than
one pending update and the UI never falls behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class ModelLoaded(Message):
    generator: Any  # core.checkpoint.Generator
    seconds: float
    precision: str = "fp32"  # what the app's requests sample at on the model's device ("bf16" or "fp32")
    precision_reason: str = "asked for"  # why, in a few words ("bf16: measured 1.9x fp32 here")


@dataclass
class PalettesLoaded(Message):
    tables: dict[str, list[tuple[int, int, int]]]  # palette name -> 256 RGB tuples


@dataclass
class ModelFailed(Message):
    path: str
    error: str  # one line


@dataclass
class SampleProgress(Message):
    """Pixels after denoising step `index` of `total` (previews are throttled by the worker)."""

    job: int
    index: int
    total: int
    pixels: bytes
    n: int
    seconds: float
    painted: Any = None  # a threading.Event the screen sets once this preview is on the terminal

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SampleProgress) and message.job == self.job


@dataclass
class SampleDone(Message):
    job: int
    request: Any  # core.sampling.request.SampleRequest
    images: Any  # (n,1,28,28) tensor in [-1, 1]
    pixels: bytes
    seconds: float


@dataclass
class SampleStopped(Message):
    """Cancelled (error is None) or failed (error says why, one line)."""

    job: int
    index: int
    total: int
    error: str | None = None


@dataclass
class ExportDone(Message):
    paths: list[str]


@dataclass
class ExportFailed(Message):
    error: str


@dataclass
class RecipeLoaded(Message):
    path: str
    request: Any  # core.sampling.request.SampleRequest
    index: int | None
    recipe: dict
    model: str | None  # the recipe's checkpoint, found by its hash, or None


@dataclass
class RecipeFailed(Message):
    path: str
    error: str


@dataclass
class FilmReady(Message):
    """The selected item's denoising film: (label, x_t, predicted x_0) frames of grey bytes, the finished item last."""

    job: int  # the run the film re-ran (stale once another starts)
    index: int
    frames: list[tuple[str, bytes, bytes]]


@dataclass
class SourceLoaded(Message):
    """A picture to edit from, read as the dataset's items are (core.images.read_source_image)."""

    path: str
    pixels: bytes  # 28x28 grey levels
    how: str  # how it was made so, a few words


@dataclass
class SteeringFailed(Message):
    """A film or a picture to edit from could not be made or read (error: one line)."""

    what: str
    error: str


@dataclass
class RunUpdate(Message):
    """A new snapshot of the watched run directory (tui.runwatch.RunSnapshot)."""

    snapshot: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdate) and message.snapshot.run_dir == self.snapshot.run_dir


@dataclass
class MachineUpdate(Message):
    """A reading of the machine the watched run trains on (tui.machine.MachineReading) and its history."""

    reading: Any
    history: tuple  # MachineReadings, oldest first

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MachineUpdate)


@dataclass
class CompareUpdate(Message):
    """Snapshots of the runs picked in the compare view (run directory -> tui.runwatch.RunSnapshot)."""

    snapshots: dict
    runs: tuple  # the run directories under the runs folder, as listed now

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CompareUpdate)


@dataclass
class TrainingStarted(Message):
    trainer: Any  # core.training.trainer.Trainer
    run_dir: str


@dataclass
class TrainingEnded(Message):
    """The in-app training returned (outcome finished/stopped), failed (error set), or had nothing
    left to do (outcome complete: a resumed run that had already trained its epochs)."""

    run_dir: str
    outcome: str
    error: str | None = None
    checkpoint: str | None = None
    epochs: int | None = None


@dataclass
class OpenCheckpoint(Message):
    """Ask the app to switch to the generate screen on this checkpoint (from the monitor)."""

    path: str
