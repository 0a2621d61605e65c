"""Test helpers shared by every layer: a tiny synthetic dataset, IDX writers, a tiny checkpoint.

Import as `from support import ...` (tests/ is on pytest's pythonpath); `conftest` is not a
stable module name once several folders have one.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# The test model: the tiny preset trained on Fashion-MNIST, with its guide beside it as
# test-model-guide.pt (made by tests/make_test_model.py). Every test that compares pixels samples
# it: each field of a request moves its pixels (tests/core/test_test_model.py), which an untrained
# model's do not.
TEST_MODEL = REPO / "tests" / "data" / "test-model.pt"


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
    """An untrained tiny generator checkpoint (random weights, real format), for tests of files,
    hashes and refusals. Its output layer starts at zero, so it draws the same pixels whatever the
    request's class, guidance or mix: compare pixels from TEST_MODEL instead."""
    from core.checkpoint import FORMAT_VERSION, KIND, atomic_save, config_dicts, model_state
    from core.model.config import PRESETS
    from core.model.denoiser import Denoiser

    preset = PRESETS["tiny"]
    torch.manual_seed(seed)
    denoiser = Denoiser(preset.model, preset.diffusion)
    atomic_save({"kind": KIND, "format_version": FORMAT_VERSION, "preset": "tiny",
                 **config_dicts(preset.model, preset.diffusion), "ema": model_state(denoiser), "step": 0, "epoch": 0}, path)
    return path


def make_test_student(path: Path, seed: int = 0) -> Path:
    """A student of the test model (core.training.distill.student_of) whose guidance embedding's last
    layer is nudged off zero, written as a sampling checkpoint: its pixels move with g as well as with
    the classes, which a fresh student's (exactly its teacher's conditional model) do not."""
    from core.checkpoint import export_generator, load_generator, model_state, config_dicts
    from core.training.distill import student_of

    teacher = load_generator(TEST_MODEL)
    student = student_of(teacher)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in student.guided.model.guidance_embedding.mlp[2].parameters():
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    config = dataclasses.replace(teacher.model_config, guidance_input=True)
    export_generator({**config_dicts(config, teacher.diffusion_config), "ema": model_state(student), "step": 0,
                      "distill": {"teacher": TEST_MODEL.name, "teacher_hash": teacher.hash}}, path)
    return path


# --- the evaluator's classifier, tiny and hand-made (tests/core/evaluation/) ---

import pytest  # noqa: E402

from core.classes import NUM_CLASSES  # noqa: E402
from core.evaluation.classifier import ClassifierConfig, FashionClassifier  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA_DIR / "FashionMNIST" / "raw").is_dir(), reason=f"no Fashion-MNIST at {DATA_DIR}")

TINY = ClassifierConfig(widths=(2, 4), feature_dim=8, dropout=0.0)


def tiny_classifier(seed: int = 0) -> FashionClassifier:
    """Random tiny classifier with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = FashionClassifier(TINY)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1  # (n, 1, 28, 28) in [-1, 1]



class PixelCodeClassifier(FashionClassifier):
    """Predicts the class written into pixel (0, 0) as -1 + 0.2 c; features are one-hot (B, 10)."""

    def __init__(self):
        super().__init__(ClassifierConfig(widths=(1, 1), feature_dim=NUM_CLASSES, dropout=0.0))
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(NUM_CLASSES))
            self.head.bias.zero_()

    def features(self, x):
        code = ((x[:, 0, 0, 0] + 1) / 0.2).round().long().clamp(0, NUM_CLASSES - 1)
        return torch.nn.functional.one_hot(code, NUM_CLASSES).float()


def coded_images(classes: list[int]) -> torch.Tensor:
    x = -torch.ones(len(classes), 1, 28, 28)
    x[:, 0, 0, 0] = torch.tensor(classes, dtype=torch.float32) * 0.2 - 1
    return x


def poison_loss(trainer, at_step: int, factor: float) -> None:
    """Make the loss of the trainer's at_step-th step (1-based) `factor` times itself (nan, inf), as a
    diverging run would, by wrapping the eager objective its StepRunner calls."""
    real, calls = trainer.runner.eager, []

    def poisoned(x0, weights):
        calls.append(1)
        loss = real(x0, weights)
        return loss * factor if len(calls) == at_step else loss

    trainer.runner.eager = poisoned


def read_tensorboard(folder: Path):
    """What TensorBoard shows of a folder of event files, read by its own reader (EventAccumulator):
    every value of each kind, and a restarted run's purged steps purged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader
