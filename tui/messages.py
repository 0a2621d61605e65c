"""Messages that workers post to screens. Workers never touch widgets; they post one of these.

Frequent progress messages define `can_replace`, so a fast producer never queues more than
one pending update and the UI never falls behind.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ModelLoaded(Message):
    def __init__(self, generator: Any, seconds: float) -> None:
        super().__init__()
        self.generator = generator  # core.checkpoint.Generator
        self.seconds = seconds


class PalettesLoaded(Message):
    def __init__(self, tables: dict[str, list[tuple[int, int, int]]]) -> None:
        super().__init__()
        self.tables = tables  # palette name -> 256 RGB tuples


class ModelFailed(Message):
    def __init__(self, path: str, error: str) -> None:
        super().__init__()
        self.path = path
        self.error = error


class SampleProgress(Message):
    """Pixels after denoising step `index` of `total` (previews are throttled by the worker)."""

    def __init__(self, job: int, index: int, total: int, pixels: bytes, n: int, seconds: float) -> None:
        super().__init__()
        self.job, self.index, self.total = job, index, total
        self.pixels, self.n, self.seconds = pixels, n, seconds

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SampleProgress) and message.job == self.job


class SampleDone(Message):
    def __init__(self, job: int, request: Any, images: Any, pixels: bytes, seconds: float) -> None:
        super().__init__()
        self.job = job
        self.request = request  # core.sampling.SampleRequest
        self.images = images  # (n,1,28,28) tensor in [-1, 1]
        self.pixels = pixels
        self.seconds = seconds


class SampleStopped(Message):
    """Cancelled (error is None) or failed (error says why, one line)."""

    def __init__(self, job: int, index: int, total: int, error: str | None = None) -> None:
        super().__init__()
        self.job, self.index, self.total, self.error = job, index, total, error


class ExportDone(Message):
    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths


class ExportFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RecipeLoaded(Message):
    def __init__(self, path: str, request: Any, index: int | None, recipe: dict, model: str | None) -> None:
        super().__init__()
        self.path, self.request, self.index, self.recipe = path, request, index, recipe
        self.model = model  # the recipe's checkpoint, found by its hash, or None


class RecipeFailed(Message):
    def __init__(self, path: str, error: str) -> None:
        super().__init__()
        self.path, self.error = path, error


class RunUpdate(Message):
    """A new snapshot of the watched run directory (tui.runwatch.RunSnapshot)."""

    def __init__(self, snapshot: Any) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdate) and message.snapshot.run_dir == self.snapshot.run_dir


class TrainingStarted(Message):
    def __init__(self, trainer: Any, run_dir: str) -> None:
        super().__init__()
        self.trainer, self.run_dir = trainer, run_dir


class TrainingEnded(Message):
    """The in-app training returned (outcome finished/stopped), failed (error set), or had nothing
    left to do (outcome complete: a resumed run that had already trained its epochs)."""

    def __init__(self, run_dir: str, outcome: str, error: str | None = None, checkpoint: str | None = None,
                 epochs: int | None = None) -> None:
        super().__init__()
        self.run_dir, self.outcome, self.error, self.checkpoint, self.epochs = run_dir, outcome, error, checkpoint, epochs


class OpenCheckpoint(Message):
    """Ask the app to switch to the generate screen on this checkpoint (from the monitor)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
