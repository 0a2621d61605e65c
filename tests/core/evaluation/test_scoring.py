"""core.evaluation.scoring: scoring a generator end to end with a hand-made classifier."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.classes import CLASS_NAMES, NUM_CLASSES
from core.evaluation.metrics import MIN_ITEMS_FOR_INFINITY, frechet_distance_infinity
from core.evaluation.scoring import RESULT_KEYS, evaluate_generator, format_table
from core.evaluation.classifier import EvaluationError, extract_features
from support import images, tiny_classifier


# --- evaluate_generator ---------------------------------------------------------


def test_evaluate_generator_returns_documented_keys():
    classifier = tiny_classifier()
    calls: list[tuple[int, int]] = []

    def sample_fn(class_index: int, n: int) -> torch.Tensor:
        calls.append((class_index, n))
        return images(n, seed=100 + class_index) * 1.2  # a little outside [-1, 1]: must be clamped, not rejected

    test_x, test_y = images(40, seed=7), torch.arange(40) % 10
    test_y[test_y == 9] = 8  # class 9 has no real items: its real diversity is None, not NaN
    progress: list[tuple[int, int]] = []
    result = evaluate_generator(sample_fn, classifier, test_x, test_y, n_per_class=3, floor=2.0,
                                progress=lambda done, total: progress.append((done, total)))
    assert calls == [(c, 3) for c in range(NUM_CLASSES)]
    assert progress[-1] == (NUM_CLASSES, NUM_CLASSES)
    assert tuple(result) == RESULT_KEYS
    json.dumps(result, allow_nan=False)  # strict JSON: NaN was replaced by None
    assert result["n_per_class"] == 3 and result["n_generated"] == 30 and result["n_real"] == 40
    assert 0.0 <= result["accuracy"] <= 1.0
    assert len(result["per_class_accuracy"]) == NUM_CLASSES
    assert result["frechet_distance"] >= 0
    assert result["floor"] == 2.0 and result["ratio"] == pytest.approx(result["frechet_distance"] / 2.0)
    assert len(result["diversity_generated"]) == len(result["diversity_real"]) == NUM_CLASSES
    assert result["diversity_real"][9] is None and result["diversity_real"][0] is not None
    table = format_table(result)
    assert all(name in table for name in CLASS_NAMES)
    assert "Frechet distance" in table and "floor" in table
    assert f"ratio: {result['ratio']:.2f}x" in table  # two decimals: 1.46x and 1.54x both round to 1.5x

    assert result["frechet_infinity"] is None and result["floor_infinity"] is None  # 30 items: too few to extrapolate
    assert "bias-corrected" not in table

    no_floor = evaluate_generator(sample_fn, classifier, test_x, test_y, n_per_class=2)
    assert no_floor["floor"] is None and no_floor["ratio"] is None
    assert "floor" not in format_table(no_floor)


def test_evaluate_generator_bias_corrected_distance_from_enough_items():
    classifier = tiny_classifier()
    test_x, test_y = images(200, seed=7), torch.arange(200) % 10
    per_class = MIN_ITEMS_FOR_INFINITY // NUM_CLASSES

    def squares(c: int, n: int) -> torch.Tensor:  # a bright square of random size and place per item
        generator = torch.Generator().manual_seed(300 + c)
        out = torch.full((n, 1, 28, 28), -1.0)
        for i in range(n):
            side, x, y = (int(v) for v in torch.randint(3, 14, (3,), generator=generator))
            out[i, 0, y:y + side, x:x + side] = 1.0
        return out

    result = evaluate_generator(squares, classifier, test_x, test_y, n_per_class=per_class, floor=0.5, floor_infinity=0.02)
    assert isinstance(result["frechet_infinity"], float) and math.isfinite(result["frechet_infinity"])
    generated = extract_features(classifier, torch.cat([squares(c, per_class) for c in range(NUM_CLASSES)]))
    assert result["frechet_infinity"] == pytest.approx(frechet_distance_infinity(generated, extract_features(classifier, test_x)))
    assert result["floor_infinity"] == 0.02
    json.dumps(result, allow_nan=False)
    assert "bias-corrected (items -> infinity):" in format_table(result) and "real train-vs-test: 0.020" in format_table(result)


def test_evaluate_generator_rejects_bad_samples():
    classifier, test_x, test_y = tiny_classifier(), images(20), torch.arange(20) % 10
    with pytest.raises(EvaluationError, match="shaped"):
        evaluate_generator(lambda c, n: torch.zeros(n, 28, 28), classifier, test_x, test_y, n_per_class=2)
    with pytest.raises(EvaluationError, match="expected 2"):
        evaluate_generator(lambda c, n: torch.zeros(n + 1, 1, 28, 28), classifier, test_x, test_y, n_per_class=2)
    with pytest.raises(EvaluationError, match="non-finite"):
        evaluate_generator(lambda c, n: torch.full((n, 1, 28, 28), math.nan), classifier, test_x, test_y, n_per_class=2)
