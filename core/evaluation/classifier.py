"""The evaluator's classifier: a small CNN trained on real Fashion-MNIST, its checkpoint file (a
plain dict of fp16 tensors, loaded with weights_only=True) and its training.

The classifier ships as checkpoints/classifier.pt. Train it with:
    python -m core.evaluation --train-classifier --data-dir ../shared/data --epochs 5
(the shipped file: 5 epochs, seed 0, 93.68% test accuracy; ~4-5 min on 2 idle CPU cores)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import CheckpointError, atomic_save, package_checkpoint_dir, read_checkpoint
from ..classes import NUM_CLASSES
from ..model.config import from_dict
from ..data import load_split

CHECKPOINT_KIND = "fashion-classifier"
FORMAT_VERSION = 1
EVAL_BATCH = 500  # images per no_grad forward; ~10 MB of activations at the default widths


class EvaluationError(ValueError):
    """A classifier checkpoint or evaluation input cannot be used; the message is one line."""


def default_classifier_path() -> Path:
    return package_checkpoint_dir() / "classifier.pt"


@dataclass
class ClassifierConfig:
    """Two conv stages (28x28 then 14x14, two 3x3 convs each) -> linear features -> logits."""

    widths: tuple[int, int] = (32, 64)  # channels of the 28x28 and 14x14 stages
    feature_dim: int = 128  # penultimate width: the space the Frechet distance and diversity live in
    dropout: float = 0.2  # on the features, training only

    @classmethod
    def from_dict(cls, data: object) -> "ClassifierConfig":
        """Validated config from a checkpoint's dict; ValueError (one line) on anything odd."""
        config = from_dict(cls, data)
        if not isinstance(config.widths, tuple) or len(config.widths) != 2:
            raise ValueError(f"config widths must be two integers, not {config.widths!r}")
        ints = (*config.widths, config.feature_dim)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in ints):
            raise ValueError(f"config widths/feature_dim must be integers in 1..4096, not {ints}")
        if not isinstance(config.dropout, (int, float)) or not 0.0 <= config.dropout < 1.0:
            raise ValueError(f"config dropout must be in [0, 1), not {config.dropout!r}")
        return config


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    # bias-free conv: the BatchNorm shift makes a conv bias redundant
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionClassifier(nn.Module):
    """(B, 1, 28, 28) in [-1, 1] -> features (B, feature_dim) -> logits (B, 10)."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        w1, w2 = self.config.widths
        self.body = nn.Sequential(
            *_conv_bn(1, w1), *_conv_bn(w1, w1), nn.MaxPool2d(2),  # (B, w1, 14, 14)
            *_conv_bn(w1, w2), *_conv_bn(w2, w2), nn.MaxPool2d(2),  # (B, w2, 7, 7)
            nn.Flatten(),  # (B, w2 * 49): keeps where things are, which global pooling would lose
            nn.Linear(w2 * 49, self.config.feature_dim, bias=False),
            nn.BatchNorm1d(self.config.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(self.config.feature_dim, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, feature_dim), post-ReLU penultimate activations."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def save_classifier(model: FashionClassifier, cfg: ClassifierConfig, path: str | os.PathLike, test_accuracy: float) -> Path:
    """Write the checkpoint dict atomically (core.checkpoint.atomic_save)."""
    path = Path(path)
    # fp16 halves the file; integer buffers (BatchNorm's num_batches_tracked) stay as they are
    state = {
        key: (value.detach().to("cpu", torch.float16) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for key, value in model.state_dict().items()
    }
    payload = {
        "kind": CHECKPOINT_KIND,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(cfg),
        "state_dict": state,
        "test_accuracy": float(test_accuracy),
    }
    atomic_save(payload, path)
    return path


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's dict, or a one-line reason (raised as ValueError) why not."""
    try:
        return read_checkpoint(path, CHECKPOINT_KIND, FORMAT_VERSION)
    except CheckpointError as error:
        if not path.exists():
            raise ValueError("no such file (train one with: python -m core.evaluation --train-classifier --data-dir ../shared/data)") from None
        hint = " (a generator checkpoint; pass the classifier instead)" if "'fashion-diffusion'" in error.reason else ""
        raise ValueError(error.reason + hint) from None


def _build_from_blob(blob: dict) -> FashionClassifier:
    config = ClassifierConfig.from_dict(blob.get("config"))
    state = blob.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError("state_dict is missing or not a dict")
    with torch.device("meta"):  # shapes first, without memory: a small file must not make us build a huge network
        expected = FashionClassifier(config).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    if missing:
        raise ValueError(f"state_dict lacks {len(missing)} tensors (first: {missing[0]})")
    if unexpected:
        raise ValueError(f"state_dict has {len(unexpected)} unexpected entries (first: {unexpected[0]})")
    converted = {}
    for key, reference in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(reference.shape):
            raise ValueError(f"state_dict[{key!r}] has shape {tuple(value.shape)}, expected {tuple(reference.shape)}")
        if reference.is_floating_point():
            if not (value.is_floating_point() and bool(torch.isfinite(value).all())):
                raise ValueError(f"state_dict[{key!r}] is not a finite floating-point tensor")
        converted[key] = value.to(reference.dtype)  # fp16 on disk -> float32 in memory
    model = FashionClassifier(config)
    model.load_state_dict(converted)
    return model


def load_classifier(path: str | os.PathLike | None = None) -> FashionClassifier:
    """FashionClassifier in eval mode, float32, on the CPU; EvaluationError (one line) if unusable.

    The stored test accuracy is kept as `model.test_accuracy` (float, NaN if absent).
    """
    path = Path(path) if path is not None else default_classifier_path()
    try:
        blob = _read_checkpoint(path)
        model = _build_from_blob(blob)
    except (ValueError, TypeError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise EvaluationError(f"{path} is not a usable classifier checkpoint: {reason}") from None
    accuracy = blob.get("test_accuracy")
    model.test_accuracy = float(accuracy) if isinstance(accuracy, (int, float)) else math.nan
    return model.float().to(memory_format=torch.channels_last).eval()  # NHWC convs: ~25% faster on CPU


@dataclass
class EpochReport:
    """What train_classifier tells its progress callback after each epoch."""

    epoch: int  # 1-based
    epochs: int
    loss: float  # mean training cross-entropy over the epoch
    train_accuracy: float  # on the augmented batches, dropout on
    test_accuracy: float
    seconds: float  # wall time since training started


def _shift_flip(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random per-image shifts of up to max_shift px (pad with background -1, crop) and horizontal flips."""
    b = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)  # (B, 1, 28 + 2s, 28 + 2s)
    offset = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    span = torch.arange(28)
    rows = (offset[0][:, None] + span)[:, :, None]  # (B, 28, 1)
    cols = (offset[1][:, None] + span)[:, None, :]  # (B, 1, 28)
    flip = torch.rand(b, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], 2 * offset[1][:, None, None] + 27 - cols, cols)  # mirror within the crop
    out = padded[torch.arange(b)[:, None, None], 0, rows, cols]  # (B, 28, 28)
    return out.unsqueeze(1)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_images(images: torch.Tensor, what: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise EvaluationError(f"{what} must be a tensor, not {type(images).__name__}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise EvaluationError(f"{what} must be shaped (N, 1, 28, 28), not {tuple(images.shape)}")
    return images


def _forward_batched(classifier: FashionClassifier, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) -> (features (N, F) float32 CPU, predicted labels (N,) int64 CPU), eval/no_grad."""
    images = _check_images(images)
    device = _device_of(classifier)
    feats, preds = [], []
    with _eval_mode(classifier):
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, torch.float32).contiguous(memory_format=torch.channels_last)
            f = classifier.features(x)
            feats.append(f.float().cpu())
            preds.append(classifier.head(f).argmax(1).cpu())
    if not feats:
        return torch.zeros(0, classifier.config.feature_dim), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(preds)


def extract_features(classifier: FashionClassifier, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(N, 1, 28, 28) in [-1, 1] -> (N, feature_dim) float32 on the CPU."""
    return _forward_batched(classifier, images, batch_size)[0]


def predict(classifier: FashionClassifier, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(N, 1, 28, 28) in [-1, 1] -> predicted class indices (N,) int64."""
    return _forward_batched(classifier, images, batch_size)[1]


def train_classifier(
    data_dir,
    epochs: int = 5,
    seed: int = 0,
    progress: Callable[[EpochReport], None] | None = None,
    *,
    config: ClassifierConfig | None = None,
    batch_size: int = 128,
    lr: float = 4e-3,
    weight_decay: float = 0.05,
    augment: bool = True,
    limit: int | None = None,
    threads: int | None = 2,
) -> tuple[FashionClassifier, ClassifierConfig, float]:
    """Train on the train split, return (model in eval mode, config, test accuracy).

    The returned accuracy is measured after an fp16 round trip of the weights, so it is
    the accuracy of the model save_classifier writes. DataError if the data is missing.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs}")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # weight init and dropout
    generator = torch.Generator().manual_seed(seed)  # batch order and augmentation
    config = config or ClassifierConfig()
    train, test = load_split("train", data_dir, limit=limit), load_split("test", data_dir, limit=limit)
    x, y = train.as_float(), train.labels  # (N, 1, 28, 28) in [-1, 1], (N,): all held in memory
    x_test, y_test = test.as_float(), test.labels

    model = FashionClassifier(config).to(memory_format=torch.channels_last)  # ~2x faster convs on CPU
    batch_size = min(batch_size, len(y))
    steps_per_epoch = len(y) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25)
    started = time.perf_counter()
    test_accuracy = math.nan
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        loss_sum, correct = 0.0, 0
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            xb, yb = x[index], y[index]
            if augment:
                xb = _shift_flip(xb, generator)
            logits = model(xb.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item()
            correct += int((logits.argmax(1) == yb).sum())
        test_accuracy = float((predict(model, x_test) == y_test).float().mean())
        if progress is not None:
            progress(EpochReport(epoch + 1, epochs, loss_sum / steps_per_epoch, correct / (steps_per_epoch * batch_size),
                                 test_accuracy, time.perf_counter() - started))

    # fp16 round trip, so the returned model and accuracy are exactly what gets shipped
    model = model.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    model.eval()
    test_accuracy = float((predict(model, x_test) == y_test).float().mean())
    return model, config, test_accuracy
