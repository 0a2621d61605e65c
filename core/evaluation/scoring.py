"""Scoring a generator: sample every class, score the items with the classifier's metrics
(core.evaluation.classifier holds the network, core.evaluation.metrics the pure measurements),
and format the table.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..classes import CLASS_NAMES, NUM_CLASSES

from .classifier import (
    EVAL_BATCH, EvaluationError, FashionClassifier, _check_images, _forward_batched, extract_features,
)
from .metrics import (
    MIN_ITEMS_FOR_INFINITY, _accuracy_from_predictions, _as_labels, _nan_to_none, _nanmean, diversity,
    frechet_distance, frechet_distance_infinity,
)

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
