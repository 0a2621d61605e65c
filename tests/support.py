"""Test helpers shared by every layer: a tiny synthetic dataset, IDX writers, a tiny checkpoint.

Import as `from support import ...` (tests/ is on pytest's pythonpath); `conftest` is not a
stable module name once several folders have one.
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_idx(path: Path, array: torch.Tensor, magic: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = tuple(array.shape)
    path.write_bytes(struct.pack(">i", magic) + struct.pack(f">{len(dims)}i", *dims) + array.to(torch.uint8).numpy().tobytes())


def make_fake_dataset(root: Path, n_train: int = 64, n_test: int = 20, seed: int = 0) -> Path:
    """A valid FashionMNIST/raw layout: class c is a bright square whose size grows with c."""
    generator = torch.Generator().manual_seed(seed)
    raw = root / "FashionMNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 30, (n, 28, 28), generator=generator)
        for i, c in enumerate(labels.tolist()):
            images[i, 4: 6 + 2 * c, 4: 6 + 2 * c] = 220
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    return root


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained tiny generator checkpoint (random weights, real format)."""
    from core.checkpoint import FORMAT_VERSION, KIND, atomic_save, config_dicts, model_state
    from core.config import PRESETS
    from core.model import Denoiser

    preset = PRESETS["tiny"]
    torch.manual_seed(seed)
    denoiser = Denoiser(preset.model, preset.diffusion)
    atomic_save({"kind": KIND, "format_version": FORMAT_VERSION, "preset": "tiny",
                 **config_dicts(preset.model, preset.diffusion), "ema": model_state(denoiser), "step": 0, "epoch": 0}, path)
    return path
