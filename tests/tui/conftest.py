"""TUI fixtures: an app factory on the test model (its guide beside it) with small step counts, and wait helpers."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest

from tui.app import AppOptions, FashionApp

SMALL = {"sampler": "ddim", "steps": 4, "items": 4}
TINY_TRAINING = {"epochs": 50, "batch_size": 16, "log_every": 1, "checkpoint_every": 10, "sample_grid_per_class": 1,
                 "warmup_steps": 5}


@pytest.fixture
def make_app(trained_checkpoint, tmp_path):
    """FashionApp(AppOptions(...)) on the test model, whose pixels move with every setting (so a
    test that compares them checks the setting); keyword arguments override options."""

    def factory(**overrides) -> FashionApp:
        options = AppOptions(checkpoint=str(trained_checkpoint), export_dir=str(tmp_path / "exports"),
                             runs_root=str(tmp_path / "runs"), train_preset="tiny",
                             train_overrides=dict(TINY_TRAINING), **SMALL)
        for name, value in overrides.items():
            setattr(options, name, value)
        return FashionApp(options)

    return factory


@pytest.fixture
def other_checkpoint(trained_checkpoint, tmp_path) -> Path:
    """The test model with every weight moved (so another hash and other pixels), without a guide."""
    import torch

    from core.checkpoint import atomic_save

    data = torch.load(trained_checkpoint, weights_only=True)
    data["ema"] = {name: value + 0.01 if value.is_floating_point() else value for name, value in data["ema"].items()}
    path = tmp_path / "other.pt"
    atomic_save(data, path)
    return path


async def wait_until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until predicate() is true (workers run in threads, so poll)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; status: {status_text(pilot.app)!r}")
        await pilot.pause(0.05)


def status_text(app) -> str:
    try:
        return app.screen.query_one("StatusLine").message
    except Exception:
        return ""


# One run of text in the SVG that App.export_screenshot writes (rich's export_svg): its x, its width,
# the row it is clipped to, and the characters.
_SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
                       r'clip-path="url\(#[\w-]+-line-(\d+)\)">(.*?)</text>')


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (one line per row), read from the app's own
    screenshot (the public App.export_screenshot), so no private compositor state is touched."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, length, row, content in _SVG_TEXT.findall(app.export_screenshot()):
        content = html.unescape(content).replace("\xa0", " ")
        if not content:
            continue
        column = round(float(x) / (float(length) / len(content)))
        for offset, char in enumerate(content[:max(0, width - column)]):
            rows[int(row)][column + offset] = char
    return "\n".join("".join(row).rstrip() for row in rows)


async def model_ready(pilot) -> None:
    await wait_until(pilot, lambda: getattr(pilot.app.screen, "generator", None) is not None, what="the model to load")


async def generated(pilot) -> None:
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.result is not None and screen.sampling is None, what="a generation to finish")


@pytest.fixture
def run_dir(tmp_path, tiny_checkpoint) -> Path:
    """A run directory as core.training.trainer writes it, mid-training: 5 metric lines, a checkpoint, a sample grid."""
    import shutil

    import torch

    from core.images import make_grid, save_png, to_pil

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"state": "running", "device": "cpu", "preset": "tiny", "total_steps": 100,
                                              "epochs": 2, "steps_per_epoch": 50}))
    write_metrics(run, range(10, 60, 10))
    shutil.copy(tiny_checkpoint, run / "checkpoints" / "step-0000010.pt")
    images = torch.linspace(-1, 1, 10 * 2 * 784).reshape(20, 1, 28, 28)
    save_png(to_pil(make_grid(images, 2), "grey", 2), run / "samples" / "epoch-001.png", {"kind": "training-samples"})
    return run


def metrics_line(step: int, total: int = 100) -> str:
    return json.dumps({"step": step, "epoch": step / 50, "loss": 1.0 / step, "loss_smooth": 1.2 / step, "lr": 1e-3,
                       "images_per_sec": 100.0 + step, "elapsed_sec": step * 0.1, "eta_sec": (total - step) * 0.1,
                       "total_steps": total}) + "\n"


def write_metrics(run: Path, steps) -> None:
    with open(run / "metrics.jsonl", "a") as handle:
        for step in steps:
            handle.write(metrics_line(step))


@pytest.fixture
def helpers():
    """The wait helpers, for tests that prefer a fixture to an import."""

    class Helpers:
        wait_until = staticmethod(wait_until)
        status_text = staticmethod(status_text)
        screen_text = staticmethod(screen_text)
        model_ready = staticmethod(model_ready)
        generated = staticmethod(generated)
        write_metrics = staticmethod(write_metrics)
        metrics_line = staticmethod(metrics_line)

    return Helpers
