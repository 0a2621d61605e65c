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
class RunUpdate(Message):
    """A new snapshot of the watched run directory (tui.runwatch.RunSnapshot)."""

    snapshot: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdate) and message.snapshot.run_dir == self.snapshot.run_dir


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
