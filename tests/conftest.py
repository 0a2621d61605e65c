"""Shared fixtures: a tiny generator checkpoint and a tiny synthetic dataset (helpers in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from support import make_fake_dataset, make_tiny_checkpoint

torch.set_num_threads(1)  # tests are small; leave the other core to whatever else runs


@pytest.fixture
def fake_data_dir(tmp_path) -> Path:
    return make_fake_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def perturbed(tiny_checkpoint):
    """A tiny generator whose class and guidance visibly change its output (fresh weights are near-identity).
    Shared: tests must not change it (load_generator(tiny_checkpoint) gives a private copy)."""
    from core.checkpoint import load_generator

    generator = load_generator(tiny_checkpoint)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in generator.denoiser.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return generator
