"""Shared fixtures: the test model, an untrained tiny checkpoint and a tiny synthetic dataset (helpers in support.py)."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest
import torch

from support import TEST_MODEL, make_fake_dataset, make_test_student, make_tiny_checkpoint

torch.set_num_threads(1)  # tests are small; leave the other core to whatever else runs
# measured speed choices (core.autotune) go to a folder of this session's, never the user's cache;
# subprocesses the tests start inherit it
os.environ["FASHION_TUI_CACHE_DIR"] = tempfile.mkdtemp(prefix="fashion-tui-cache-")


@pytest.fixture
def fake_data_dir(tmp_path) -> Path:
    return make_fake_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Untrained: for file, hash and refusal tests; never for comparing pixels (support.make_tiny_checkpoint)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def trained_checkpoint() -> Path:
    """The test model's file (tests/data/test-model.pt), its guide beside it. Read-only: copy it to change it."""
    return TEST_MODEL


@pytest.fixture(scope="session")
def trained(trained_checkpoint):
    """The test model with its autoguidance guide attached, as the app loads it (open_generator).
    Shared: tests must not change it (load_generator(trained_checkpoint) gives a private copy;
    dataclasses.replace(trained, guide=None) the model without its guide)."""
    from core.checkpoint import open_generator

    return open_generator(trained_checkpoint)


@pytest.fixture(scope="session")
def student_checkpoint(tmp_path_factory) -> Path:
    """A copy of the test model with a student of it beside it as test-model-student.pt (support.make_test_student)."""
    import shutil

    folder = tmp_path_factory.mktemp("student")
    shutil.copy(TEST_MODEL, folder / TEST_MODEL.name)
    make_test_student(folder / "test-model-student.pt")
    return folder / TEST_MODEL.name


@pytest.fixture(scope="session")
def with_student(student_checkpoint):
    """The test model with its student attached, as open_generator finds it beside the model. Shared: do not change it."""
    from core.checkpoint import open_generator

    return open_generator(student_checkpoint)
@pytest.fixture
def train_main(monkeypatch, capsys):
    """train_cli.main(argv) -> (exit code, stderr), in this process: its signal handlers kept out of
    pytest's way, COLUMNS wide so a message stays one line."""
    import train_cli

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own Ctrl-C handling
    monkeypatch.setenv("COLUMNS", "10000")

    def run(*argv) -> tuple[int, str]:
        code = train_cli.main([str(a) for a in argv])
        return code, capsys.readouterr().err

    return run
