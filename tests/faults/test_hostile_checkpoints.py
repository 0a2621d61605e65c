"""Hostile and broken checkpoints given to every entry point: nothing runs, one clear line, non-zero exit.

The hostile files are pickles whose unpickling would call open(marker, "w"); the marker must never appear.
CLI cases run as real processes (faultkit.cli: forked from a warm server; one cold `python -m tui.cli`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.checkpoint import CheckpointError
from faultkit import REPO, TRAIN, TUI, assert_refused, bad_checkpoints, cli, make_tiny_checkpoint, run_cold

REASONS = {  # file -> what the one line must say about it
    "hostile": "needs code to load",
    "hostile-pickle": "needs code to load",
    "truncated": "corrupt or truncated",
    "empty": "empty",
    "directory": "directory",
    "other-architecture": "do not fit",
    "wrong-shapes": "do not fit",
    "huge-architecture": "do not fit",
    "absurd-config": "out of range",
    "classifier": "'fashion-classifier'",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "code-ran"
    good = make_tiny_checkpoint(root / "good.pt")
    found = bad_checkpoints(root / "bad", good, marker)
    yield {"root": root, "marker": marker, "good": good, **found}
    assert not marker.exists(), "a hostile pickle ran code"


@pytest.fixture
def marker(files):
    yield files["marker"]
    assert not files["marker"].exists(), "a hostile pickle ran code"


def generate_args(checkpoint: Path, out: Path) -> list[str]:
    return ["generate", "--checkpoint", str(checkpoint), "--class", "boot", "--n", "2", "--steps", "2", "--out", str(out)]


def test_hostile_checkpoint_to_generate_in_a_fresh_interpreter(files, marker, tmp_path):
    result = run_cold(["-m", "tui.cli", *generate_args(files["hostile"], tmp_path / "out")], cwd=tmp_path)
    assert_refused(result, str(files["hostile"]), "is not a usable checkpoint", REASONS["hostile"])
    assert not (tmp_path / "out").exists()  # a refused command leaves nothing behind


@pytest.mark.parametrize("name", list(REASONS))
def test_generate_refuses(files, marker, tmp_path, name):
    result = cli(TUI, *generate_args(files[name], tmp_path / "out"), cwd=tmp_path)
    assert_refused(result, str(files[name]), "is not a usable checkpoint", REASONS[name])
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", list(REASONS))
def test_the_apps_loaders_refuse(files, marker, name):
    """The app loads through tui.jobs.open_generator; the CLI through tui.cli.load_generator_or_fail."""
    from tui.cli import load_generator_or_fail
    from tui.jobs import open_generator

    for load in (load_generator_or_fail, open_generator):
        with pytest.raises(CheckpointError) as info:
            load(str(files[name]), "cpu")
        message = str(info.value)
        assert "\n" not in message and str(files[name]) in message and REASONS[name] in message


def test_a_huge_architecture_is_refused_before_it_is_built(files, marker, monkeypatch):
    """The 1024-wide model the file describes (~1 GB) is only ever built on the memory-free meta device."""
    import torch

    import core.checkpoint as checkpoint
    from core.checkpoint import load_generator

    built = []
    real = checkpoint.Denoiser

    def spy(model_config, diffusion_config):
        built.append((torch.empty(0).device.type, model_config.channels))
        return real(model_config, diffusion_config)

    monkeypatch.setattr(checkpoint, "Denoiser", spy)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(files["huge-architecture"])
    assert built == [("meta", (1024, 1024))]


@pytest.mark.parametrize("name", ["hostile", "wrong-shapes"])
def test_evaluate_refuses_a_bad_generator(files, marker, tmp_path, name):
    result = cli(TUI, "evaluate", "--checkpoint", files[name], "--n-per-class", "2", "--steps", "2", cwd=tmp_path)
    assert_refused(result, str(files[name]), "is not a usable checkpoint", REASONS[name])


@pytest.mark.parametrize("name, reason", [
    ("hostile", "needs code to load"), ("hostile-pickle", "needs code to load"), ("truncated", "corrupt or truncated"),
    ("empty", "empty"), ("directory", "directory"), ("good", "generator checkpoint; pass the classifier"),
])
def test_evaluate_refuses_a_bad_classifier(files, marker, tmp_path, name, reason):
    result = cli(TUI, "evaluate", "--checkpoint", files["good"], "--classifier", files[name], "--n-per-class", "2",
                 "--steps", "2", cwd=tmp_path)
    assert_refused(result, str(files[name]), "is not a usable classifier checkpoint", reason)


@pytest.mark.parametrize("name, reason", [
    ("hostile", REASONS["hostile"]), ("hostile-pickle", REASONS["hostile"]), ("truncated", REASONS["truncated"]),
    ("empty", "empty"), ("directory", "directory"), ("good", "sampling-only checkpoint and cannot resume"),
])
def test_train_resume_refuses(files, marker, tmp_path, name, reason):
    run = tmp_path / "run"
    target = run / "checkpoints" / "step-0000009.pt"
    target.parent.mkdir(parents=True)
    if files[name].is_dir():
        target.mkdir()
    else:
        shutil.copyfile(files[name], target)
    result = cli(TRAIN, "--run-dir", run, "--resume", "--data-dir", tmp_path / "no-data", "--device", "cpu", "--no-progress",
                 cwd=tmp_path)
    assert_refused(result, "no usable checkpoint to resume", str(target), reason, prog="fashion-train")
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "step-0000009.pt"]  # nothing written


def test_the_shipped_classifier_is_still_accepted(files, tmp_path):
    """The refusals above are not the loader refusing everything: the real files load."""
    from core.checkpoint import load_generator
    from core.evaluation.classifier import load_classifier

    assert load_generator(files["good"]).model_config.channels == (16, 32)
    assert load_classifier(REPO / "checkpoints" / "classifier.pt").config.widths
