"""Classifier-based quality metrics for the generator (no Textual, no torchvision).

A small CNN trained on real Fashion-MNIST judges generated images three ways:
  * conditional accuracy: does a sample drawn for class c get classified as c?
  * Frechet distance between Gaussians fitted to the classifier's penultimate
    features of generated and real test images (an FID with a Fashion-MNIST
    feature extractor; numbers are not comparable to Inception FIDs), shown
    beside the real train-vs-test "floor";
  * diversity: per-class mean pairwise L2 distance in feature space, generated
    vs real (mode collapse shows up as a low generated/real ratio).

The classifier ships as checkpoints/classifier.pt, a plain dict of fp16 tensors
loaded with weights_only=True. Train it with:
    python -m core.evaluate --train-classifier --data-dir ../shared/data --epochs 5
(the shipped file: 5 epochs, seed 0, 93.68% test accuracy; ~4-5 min on 2 idle CPU cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pickle
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.checkpoint import atomic_save
from core.classes import CLASS_NAMES, NUM_CLASSES
from core.data import load_split

CHECKPOINT_KIND = "fashion-classifier"
FORMAT_VERSION = 1
REAL_FLOOR_PER_CLASS = 1_000  # real train images per class behind floor_infinity (10k, like the test split)
FLOOR_DRAWS = 5  # balanced draws of real train images averaged for the floor at a sample size
EVAL_BATCH = 500  # images per no_grad forward; ~10 MB of activations at the default widths
# The bias-corrected distance needs enough items: extrapolated from 1,000 real training images it
# lands within ~0.03 of the value from 20,000; from 500 it is off by up to ~0.15.
MIN_ITEMS_FOR_INFINITY = 1000
INFINITY_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # subset sizes, as fractions of the items
INFINITY_REPEATS = 4  # random subsets per size below the full set

# Keys of evaluate_generator's result, in the order format_table reads them.
RESULT_KEYS: tuple[str, ...] = (
    "class_names",
    "n_per_class",
    "n_generated",
    "n_real",
    "accuracy",
    "per_class_accuracy",
    "frechet_distance",
    "floor",
    "ratio",
    "frechet_infinity",
    "floor_infinity",
    "diversity_generated",
    "diversity_real",
    "diversity_generated_mean",
    "diversity_real_mean",
    "diversity_ratio",
)


class EvaluationError(ValueError):
    """A classifier checkpoint or evaluation input cannot be used; the message is one line."""


def default_classifier_path() -> Path:
    return Path(__file__).resolve().parent.parent / "checkpoints" / "classifier.pt"


# ---------------------------------------------------------------------------
# Model


@dataclass
class ClassifierConfig:
    """Two conv stages (28x28 then 14x14, two 3x3 convs each) -> linear features -> logits."""

    widths: tuple[int, int] = (32, 64)  # channels of the 28x28 and 14x14 stages
    feature_dim: int = 128  # penultimate width: the space the Frechet distance and diversity live in
    dropout: float = 0.2  # on the features, training only

    @classmethod
    def from_dict(cls, data: object) -> "ClassifierConfig":
        """Validated config from a checkpoint's dict; ValueError (one line) on anything odd."""
        if not isinstance(data, dict):
            raise ValueError(f"config is a {type(data).__name__}, not a dict")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(map(str, unknown))}")
        values = dict(data)
        if "widths" in values:
            widths = values["widths"]
            if not isinstance(widths, (list, tuple)) or len(widths) != 2:
                raise ValueError(f"config widths must be two integers, not {widths!r}")
            values["widths"] = tuple(widths)
        config = cls(**values)
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


# ---------------------------------------------------------------------------
# Checkpoint


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(error).__name__}: {line[:200]}" if line else type(error).__name__


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's dict, or a one-line reason (raised as ValueError) why not."""
    if not path.exists():
        raise ValueError("no such file (train one with: python -m core.evaluate --train-classifier --data-dir ../shared/data)")
    if path.is_dir():
        raise ValueError("it is a directory")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ValueError(f"cannot read it ({error.strerror or error})") from None
    if size == 0:
        raise ValueError("the file is empty")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" chatter for foreign pickles; we give our own reason
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses pickles that would import or call code; never retry without it
        text = " ".join(str(error).split())
        _, _, detail = text.partition("WeightsUnpickler error:")  # torch's reason, amid paragraphs of advice
        detail = detail.split(" Check the documentation")[0].strip(" .")
        if "Unsupported global" in detail:
            name = detail.split("GLOBAL", 1)[1].split()[0] if "GLOBAL" in detail else "?"
            raise ValueError(f"it needs code to load ({name}), refused by weights_only; only plain tensor dicts are accepted") from None
        if detail:
            raise ValueError(f"not a plain torch checkpoint or corrupt (weights_only: {detail[:120]})") from None
        raise ValueError(f"corrupt or truncated ({_first_line(error)})") from None
    except Exception as error:  # zip/EOF/runtime errors from a damaged file come in many types
        raise ValueError(f"corrupt or truncated ({_first_line(error)})") from None
    if not isinstance(blob, dict):
        raise ValueError(f"it holds a {type(blob).__name__}, not a checkpoint dict")
    kind = blob.get("kind")
    if kind != CHECKPOINT_KIND:
        hint = " (a generator checkpoint; pass the classifier instead)" if kind == "fashion-diffusion" else ""
        raise ValueError(f"its kind is {kind!r}, not {CHECKPOINT_KIND!r}{hint}")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version {blob.get('format_version')!r} (expected {FORMAT_VERSION})")
    return blob


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


# ---------------------------------------------------------------------------
# Training


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


# ---------------------------------------------------------------------------
# Metrics


def _as_labels(labels, n: int, what: str = "labels") -> torch.Tensor:
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if len(labels) != n:
        raise EvaluationError(f"{what} has {len(labels)} entries for {n} images")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise EvaluationError(f"{what} must be class indices 0-{NUM_CLASSES - 1}")
    return labels


def _accuracy_from_predictions(predicted: torch.Tensor, targets: torch.Tensor) -> tuple[float, list[float]]:
    hit = (predicted == targets).double()  # (N,)
    per_class = []
    for c in range(NUM_CLASSES):
        mask = targets == c
        per_class.append(float(hit[mask].mean()) if bool(mask.any()) else math.nan)
    return float(hit.mean()), per_class


def conditional_accuracy(classifier: FashionClassifier, images: torch.Tensor, target_labels) -> tuple[float, list[float]]:
    """Fraction of images classified as their target class: (overall, per class [10], NaN for absent classes)."""
    images = _check_images(images)
    if len(images) == 0:
        raise EvaluationError("conditional_accuracy needs at least one image")
    targets = _as_labels(target_labels, len(images), "target_labels")
    return _accuracy_from_predictions(predict(classifier, images), targets)


def _gaussian(feats: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
        raise EvaluationError(f"{what} must be a 2-D (N, F) tensor")
    if feats.shape[0] < 2:
        raise EvaluationError(f"{what} needs at least 2 rows to fit a covariance, has {feats.shape[0]}")
    feats = feats.detach().cpu().double()
    if not bool(torch.isfinite(feats).all()):
        raise EvaluationError(f"{what} holds non-finite values")
    mean = feats.mean(0)  # (F,)
    centred = feats - mean
    cov = centred.T @ centred / (feats.shape[0] - 1)  # (F, F), unbiased
    return mean, cov


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root by eigen-decomposition; tiny negative eigenvalues (rounding) -> 0."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to (N_a, F) and (N_b, F) features (float64).

    d = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(sqrt(S_a) S_b sqrt(S_a)).
    The inner product is symmetric PSD (unlike S_a S_b), so eigvalsh is exact and stable;
    its eigenvalues equal those of S_a S_b, hence the result is symmetric in a and b.
    """
    mean_a, cov_a = _gaussian(feats_a, "feats_a")
    mean_b, cov_b = _gaussian(feats_b, "feats_b")
    if mean_a.shape != mean_b.shape:
        raise EvaluationError(f"feature widths differ: {mean_a.shape[0]} vs {mean_b.shape[0]}")
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_sqrt
    return max(float(distance), 0.0)  # rounding can leave -1e-12 for identical sets


def frechet_distance_infinity(feats_a: torch.Tensor, feats_b: torch.Tensor, fractions: Sequence[float] = INFINITY_FRACTIONS,
                              repeats: int = INFINITY_REPEATS, seed: int = 0) -> float:
    """The Frechet distance with its small-sample bias extrapolated away (FD_inf, Chong & Forsyth 2020).

    Estimated from N rows of a, the distance is to first order d(N) = FD_inf + k / N: the sample
    covariance's noise inflates tr(S_a) - 2 tr sqrt(...) by O(1/N). Fit d on random subsets of a
    (N = fraction * N_a, `repeats` per size, the whole set once) by least squares in 1/N and
    return the intercept; b is used whole. On this project's classifier features k is ~330, so at
    1,000 items about 0.33 of any distance is bias, at 3,000 about 0.11: a ratio of two distances
    depends on N, FD_inf does not. Can come out slightly negative when FD_inf is ~0 (real vs real).
    """
    n = feats_a.shape[0] if isinstance(feats_a, torch.Tensor) and feats_a.dim() == 2 else 0
    sizes = sorted({int(round(f * n)) for f in fractions if 0 < f <= 1})
    if len(sizes) < 2 or sizes[0] < 2:
        raise EvaluationError(f"feats_a needs enough rows for at least two subset sizes of >= 2, has {n}")
    generator = torch.Generator().manual_seed(seed)
    inverse, distances = [], []
    for size in sizes:
        for _ in range(1 if size == n else max(1, repeats)):
            rows = torch.randperm(n, generator=generator)[:size]
            inverse.append(1.0 / size)
            distances.append(frechet_distance(feats_a[rows], feats_b))
    design = torch.tensor([[1.0, x] for x in inverse], dtype=torch.float64)  # (M, 2): intercept, 1/N
    fit = torch.linalg.lstsq(design, torch.tensor(distances, dtype=torch.float64)[:, None]).solution
    return float(fit[0, 0])


def diversity(feats: torch.Tensor, labels, max_per_class: int | None = 2000) -> list[float]:
    """Per-class mean pairwise L2 distance between feature rows [10]; NaN where a class has < 2 items.

    At most max_per_class rows per class (the first ones) keep the (n, n) distance matrix bounded.
    """
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
        raise EvaluationError("feats must be a 2-D (N, F) tensor")
    feats = feats.detach().cpu().double()
    labels = _as_labels(labels, len(feats))
    result = []
    for c in range(NUM_CLASSES):
        rows = feats[labels == c]
        if max_per_class is not None:
            rows = rows[:max_per_class]
        n = len(rows)
        if n < 2:
            result.append(math.nan)
            continue
        distances = torch.cdist(rows, rows)  # (n, n), zero diagonal
        result.append(float(distances.sum() / (n * (n - 1))))
    return result


def balanced_draws(labels: torch.Tensor, n_per_class: int, draws: int = FLOOR_DRAWS, seed: int = 0) -> list[torch.Tensor]:
    """`draws` random index sets into `labels`, each n_per_class items of every class (all of a
    class's items where it has fewer).

    Class-balanced like the generated set (exactly n_per_class of each class) and the test split: a
    plain random draw of 10 * n_per_class images carries class counts off by ~sqrt(n_per_class),
    which adds to its distance (at 100 per class a random draw's floor averages 0.38, a balanced
    one's 0.28), so the ratio would flatter the generator. Each class is permuted once per draw, so
    a draw at a smaller n_per_class is the start of the same draw at a larger one.
    """
    labels = _as_labels(labels, len(labels))
    generator = torch.Generator().manual_seed(seed)
    members = [torch.nonzero(labels == c).squeeze(1) for c in range(NUM_CLASSES)]
    return [torch.cat([idx[torch.randperm(len(idx), generator=generator)[:n_per_class]] for idx in members])
            for _ in range(draws)]


def floors_from_features(train_features: Callable[[torch.Tensor], torch.Tensor], train_labels: torch.Tensor,
                         test_feats: torch.Tensor, n_per_class: int, seed: int = 0,
                         draws: int = FLOOR_DRAWS) -> tuple[float, float]:
    """(floor, floor_infinity) for any feature network: what a generator that drew real images would score.

    floor: the Frechet distance of n_per_class real train images of every class against the test
    split's features (N_test, F), averaged over `draws` balanced draws: the same sample size and
    class mix as a generated set, so it carries the same small-sample bias. floor_infinity: FD_inf of
    one balanced draw of REAL_FLOOR_PER_CLASS per class, which does not depend on n_per_class.
    train_features(indices) -> (len(indices), F) features of those train images; it sees each image once.
    """
    sized = balanced_draws(train_labels, n_per_class, draws, seed)
    large = balanced_draws(train_labels, REAL_FLOOR_PER_CLASS, 1, seed)[0]
    union = torch.unique(torch.cat([*sized, large]))  # (U,) sorted
    feats = train_features(union)  # (U, F)
    row = torch.full((len(train_labels),), -1, dtype=torch.long)
    row[union] = torch.arange(len(union))
    floor = sum(frechet_distance(feats[row[d]], test_feats) for d in sized) / len(sized)
    return floor, frechet_distance_infinity(feats[row[large]], test_feats)


def real_floors(classifier: FashionClassifier, data_dir, n_per_class: int, seed: int = 0,
                batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(floor, floor_infinity) of the shipped classifier's features (floors_from_features) from one
    pass over the data. Print the floor beside a generator's distance at the same n_per_class; the
    ratio of the two depends on n_per_class (the bias is ~330 / items), floor_infinity does not
    (~0.02 for the shipped classifier). DataError if the data is missing."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    test_feats = extract_features(classifier, test.as_float(), batch_size)

    def train_features(indices: torch.Tensor) -> torch.Tensor:
        images = train.images[indices].unsqueeze(1).float().div(127.5).sub(1.0)  # (U, 1, 28, 28)
        return extract_features(classifier, images, batch_size)

    return floors_from_features(train_features, train.labels, test_feats, n_per_class, seed)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def evaluate_generator(
    sample_fn: Callable[[int, int], torch.Tensor],
    classifier: FashionClassifier,
    test_images: torch.Tensor,
    test_labels,
    n_per_class: int,
    floor: float | None = None,
    batch_size: int = EVAL_BATCH,
    progress: Callable[[int, int], None] | None = None,
    floor_infinity: float | None = None,
) -> dict:
    """Sample n_per_class images of every class and score them against the real test images.

    sample_fn(class_index, n) -> (n, 1, 28, 28) in [-1, 1] (values are clamped to that range).
    progress(classes_done, 10) is called after each class is sampled.
    Returns a JSON-serialisable dict with RESULT_KEYS; NaN becomes None. Note the Frechet
    distance is biased upwards for small n_per_class, so compare runs at equal n; frechet_infinity
    (from MIN_ITEMS_FOR_INFINITY items on, else None) removes that bias, and floor_infinity
    (real_floors' second value, passed in) is its real-vs-real counterpart.
    """
    if not isinstance(n_per_class, int) or n_per_class < 1:
        raise EvaluationError(f"n_per_class must be a positive integer, not {n_per_class!r}")
    test_images = _check_images(test_images, "test_images")
    real_labels = _as_labels(test_labels, len(test_images), "test_labels")
    gen_feats, gen_preds, gen_labels = [], [], []
    for c in range(NUM_CLASSES):
        samples = sample_fn(c, n_per_class)
        samples = _check_images(samples, f"sample_fn output for class {c}")
        if len(samples) != n_per_class:
            raise EvaluationError(f"sample_fn returned {len(samples)} images for class {c}, expected {n_per_class}")
        if not bool(torch.isfinite(samples).all()):
            raise EvaluationError(f"sample_fn returned non-finite values for class {c} ({CLASS_NAMES[c]})")
        feats, preds = _forward_batched(classifier, samples.detach().float().clamp(-1, 1), batch_size)
        gen_feats.append(feats)
        gen_preds.append(preds)
        gen_labels.append(torch.full((n_per_class,), c, dtype=torch.long))
        if progress is not None:
            progress(c + 1, NUM_CLASSES)
    gen_feats_all, gen_labels_all = torch.cat(gen_feats), torch.cat(gen_labels)
    accuracy, per_class = _accuracy_from_predictions(torch.cat(gen_preds), gen_labels_all)
    real_feats = extract_features(classifier, test_images, batch_size)
    distance = frechet_distance(gen_feats_all, real_feats)
    div_gen, div_real = diversity(gen_feats_all, gen_labels_all), diversity(real_feats, real_labels)
    mean_gen, mean_real = _nanmean(div_gen), _nanmean(div_real)
    ratio = distance / floor if floor is not None and math.isfinite(floor) and floor > 0 else None
    distance_infinity = (frechet_distance_infinity(gen_feats_all, real_feats)
                         if len(gen_labels_all) >= MIN_ITEMS_FOR_INFINITY else None)
    return {
        "class_names": list(CLASS_NAMES),
        "n_per_class": n_per_class,
        "n_generated": len(gen_labels_all),
        "n_real": len(real_labels),
        "accuracy": accuracy,
        "per_class_accuracy": [_nan_to_none(v) for v in per_class],
        "frechet_distance": distance,
        "floor": _nan_to_none(floor) if floor is not None else None,
        "ratio": ratio,
        "frechet_infinity": distance_infinity,
        "floor_infinity": _nan_to_none(floor_infinity) if floor_infinity is not None else None,
        "diversity_generated": [_nan_to_none(v) for v in div_gen],
        "diversity_real": [_nan_to_none(v) for v in div_real],
        "diversity_generated_mean": _nan_to_none(mean_gen),
        "diversity_real_mean": _nan_to_none(mean_real),
        "diversity_ratio": _nan_to_none(mean_gen / mean_real) if mean_real and math.isfinite(mean_real) else None,
    }


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def format_table(result: dict) -> str:
    """Per-class table (accuracy, diversity gen/real) followed by the overall lines."""
    names = result.get("class_names") or list(CLASS_NAMES)
    width = max(len("class"), *(len(n) for n in names))
    lines = [f"{'class':<{width}}  {'accuracy':>8}  {'div gen':>8}  {'div real':>8}"]
    for i, name in enumerate(names):
        acc = result["per_class_accuracy"][i]
        lines.append(f"{name:<{width}}  {_cell(None if acc is None else 100 * acc, '7.1f'):>7}%  "
                     f"{_cell(result['diversity_generated'][i], '8.2f'):>8}  {_cell(result['diversity_real'][i], '8.2f'):>8}")
    lines.append(f"{'mean':<{width}}  {'':>8}  {_cell(result['diversity_generated_mean'], '8.2f'):>8}  "
                 f"{_cell(result['diversity_real_mean'], '8.2f'):>8}")
    lines.append("")
    lines.append(f"conditional accuracy: {100 * result['accuracy']:.1f}% "
                 f"({result['n_generated']} samples, {result['n_per_class']} per class)")
    distance_line = f"Frechet distance (gen vs {result['n_real']} real test): {result['frechet_distance']:.3f}"
    if result.get("floor") is not None:
        distance_line += f"   real train-vs-test floor: {result['floor']:.3f}"
        if result.get("ratio") is not None:
            distance_line += f"   ratio: {result['ratio']:.2f}x"
    lines.append(distance_line)
    if result.get("frechet_infinity") is not None:
        # the ratio above depends on the number of items; these two do not
        line = f"bias-corrected (items -> infinity): {result['frechet_infinity']:.3f}"
        if result.get("floor_infinity") is not None:
            line += f"   real train-vs-test: {result['floor_infinity']:.3f}"
        lines.append(line)
    lines.append(f"diversity gen/real: {_cell(result.get('diversity_ratio'), '.2f')}"
                 + ("   (below 1 means less varied than real images)" if result.get("diversity_ratio") is not None else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# python -m core.evaluate --train-classifier


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate", description="Train the evaluation classifier.")
    parser.add_argument("--train-classifier", action="store_true", help="train and save the classifier")
    parser.add_argument("--data-dir", default=None, help="folder holding FashionMNIST/raw/ (default: $FASHION_TUI_DATA or ./data)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(default_classifier_path()))
    args = parser.parse_args(argv)
    if not args.train_classifier:
        parser.print_help()
        return 2
    from core.data import DataError

    def report(r: EpochReport) -> None:
        print(f"epoch {r.epoch}/{r.epochs}  loss {r.loss:.4f}  train acc {100 * r.train_accuracy:.2f}%  "
              f"test acc {100 * r.test_accuracy:.2f}%  ({r.seconds:.0f}s)", flush=True)

    started = time.perf_counter()
    try:
        model, config, accuracy = train_classifier(args.data_dir, args.epochs, args.seed, report, batch_size=args.batch_size)
        path = save_classifier(model, config, args.out, accuracy)
    except (DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"test accuracy {100 * accuracy:.2f}% (fp16 weights) in {time.perf_counter() - started:.0f}s; "
          f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
