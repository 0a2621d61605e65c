"""Quality metrics on classifier features: conditional accuracy, Frechet distance (and its
bias-corrected extrapolation), per-class diversity, and the real-vs-real floors they are read
against.

  * conditional accuracy: does a sample drawn for class c get classified as c?
  * Frechet distance between Gaussians fitted to the classifier's penultimate features of
    generated and real test images (an FID with a Fashion-MNIST feature extractor; numbers are
    not comparable to Inception FIDs), shown beside the real train-vs-test "floor";
  * diversity: per-class mean pairwise L2 distance in feature space, generated vs real (mode
    collapse shows up as a low generated/real ratio);
  * kernel distance (KID): an unbiased squared MMD in the same features, meaningful at the few
    hundred items of the training's quality probe, where the Frechet distance is mostly bias.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..classes import NUM_CLASSES
from ..data import load_split

from .classifier import EVAL_BATCH, EvaluationError, FashionClassifier, _check_images, extract_features, predict

REAL_FLOOR_PER_CLASS = 1_000  # real train images per class behind floor_infinity (10k, like the test split)
FLOOR_DRAWS = 5  # balanced draws of real train images averaged for the floor at a sample size
# The bias-corrected distance needs enough items: extrapolated from 1,000 real training images it
# lands within ~0.03 of the value from 20,000; from 500 it is off by up to ~0.15.
MIN_ITEMS_FOR_INFINITY = 1000
INFINITY_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # subset sizes, as fractions of the items
INFINITY_REPEATS = 4  # random subsets per size below the full set
# KID's subsets, as the reference implementations draw them (torch-fidelity: 100 of 1,000 items)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


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


def kernel_distance(feats_a: torch.Tensor, feats_b: torch.Tensor, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018) on (N_a, F) and (N_b, F) features: (mean, std)
    over `subsets` random subsets of m = min(N_a, N_b, subset_size) rows of each.

    Each subset's MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / F + 1)^3 is the unbiased
    U-statistic: the within-set means leave out the diagonal, so its expectation is the population
    MMD^2 at any m (0 for two sets from one distribution), where the Frechet distance's grows by
    ~330 / N on these features. Can come out slightly negative when the sets match."""
    for feats, what in ((feats_a, "feats_a"), (feats_b, "feats_b")):
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[0] < 2:
            raise EvaluationError(f"{what} must be a 2-D (N, F) tensor with at least 2 rows")
    if feats_a.shape[1] != feats_b.shape[1]:
        raise EvaluationError(f"feature widths differ: {feats_a.shape[1]} vs {feats_b.shape[1]}")
    a, b = feats_a.detach().cpu().double(), feats_b.detach().cpu().double()
    if not bool(torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise EvaluationError("kernel_distance's features hold non-finite values")
    m, width = min(len(a), len(b), subset_size), a.shape[1]
    generator = torch.Generator().manual_seed(seed)
    off_diagonal = m * (m - 1)
    values = []
    for _ in range(max(1, subsets)):
        x = a[torch.randperm(len(a), generator=generator)[:m]]  # (m, F)
        y = b[torch.randperm(len(b), generator=generator)[:m]]
        k_xx, k_yy, k_xy = ((p @ q.T / width + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))  # (m, m) each
        values.append(float((k_xx.sum() - k_xx.trace()) / off_diagonal + (k_yy.sum() - k_yy.trace()) / off_diagonal
                            - 2 * k_xy.mean()))
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    return mean, std


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
