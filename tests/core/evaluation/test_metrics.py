"""core.evaluation.metrics against closed forms: Frechet distance (and its bias-free extrapolation), accuracy, diversity, the real floors."""

from __future__ import annotations

import math

import pytest
import torch

from core.classes import NUM_CLASSES
from core.evaluation.classifier import EvaluationError
from core.evaluation.metrics import (
    conditional_accuracy, diversity, frechet_distance, frechet_distance_infinity, balanced_draws,
    floors_from_features, FLOOR_DRAWS, REAL_FLOOR_PER_CLASS,
)
from support import PixelCodeClassifier, coded_images, images, tiny_classifier


# --- Frechet distance -------------------------------------------------------


def diagonal_set(mean: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """2F rows mean +- spread_i e_i: sample mean is `mean`, sample covariance exactly diag(2 spread^2 / (2F - 1))."""
    offsets = torch.diag(spread.double())  # (F, F)
    return torch.cat([mean + offsets, mean - offsets])  # (2F, F)


def test_frechet_zero_for_identical_sets():
    feats = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(feats, feats.clone()[torch.randperm(300)]) == pytest.approx(0.0, abs=1e-8)


def test_frechet_matches_closed_form_for_diagonal_covariances():
    f = 6
    mean_a, mean_b = torch.zeros(f, dtype=torch.float64), torch.linspace(-1, 2, f, dtype=torch.float64)
    spread_a, spread_b = torch.linspace(0.5, 3, f), torch.linspace(2, 0.1, f)
    var_a = 2 * spread_a.double() ** 2 / (2 * f - 1)
    var_b = 2 * spread_b.double() ** 2 / (2 * f - 1)
    expected = float((mean_a - mean_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum())
    a, b = diagonal_set(mean_a, spread_a), diagonal_set(mean_b, spread_b)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shift", [0.1, 1.0, 5.0])
def test_frechet_grows_with_mean_shift(shift):
    # a pure shift leaves the covariance alone, so the distance is exactly |shift|^2 * F
    feats = torch.randn(200, 8, generator=torch.Generator().manual_seed(2))
    assert frechet_distance(feats, feats + shift) == pytest.approx(shift**2 * 8, rel=1e-6)


def test_frechet_symmetric_and_positive_for_rank_deficient_sets():
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(20, 32, generator=generator)  # fewer rows than features: singular covariances
    b = torch.randn(25, 32, generator=generator) * 1.5 + 0.3
    d_ab, d_ba = frechet_distance(a, b), frechet_distance(b, a)
    assert d_ab > 0 and math.isfinite(d_ab)
    assert d_ab == pytest.approx(d_ba, rel=1e-6)


def test_frechet_infinity_removes_the_small_sample_bias():
    # a ~ N(0, I), b ~ N(mu, I): the true distance is |mu|^2 = 0.49; from 400 rows of a in 32
    # dimensions the plain estimate is ~0.77 too high, the extrapolated one within noise of the truth
    raw_errors, infinity_errors = [], []
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        mu = torch.zeros(32)
        mu[0] = 0.7
        a, b = torch.randn(400, 32, generator=generator), torch.randn(20000, 32, generator=generator) + mu
        raw_errors.append(frechet_distance(a, b) - 0.49)
        infinity_errors.append(frechet_distance_infinity(a, b) - 0.49)
    assert min(raw_errors) > 0.6
    assert max(abs(e) for e in infinity_errors) < 0.3
    assert abs(sum(infinity_errors) / 4) < 0.15
    a = torch.randn(400, 32, generator=torch.Generator().manual_seed(9))
    assert frechet_distance_infinity(a, b, seed=1) == frechet_distance_infinity(a, b, seed=1)  # seeded subsets


def test_frechet_infinity_needs_two_subset_sizes():
    with pytest.raises(EvaluationError, match="at least two subset sizes"):
        frechet_distance_infinity(torch.zeros(2, 4), torch.randn(10, 4))
    with pytest.raises(EvaluationError, match="at least two subset sizes"):
        frechet_distance_infinity(torch.zeros(10, 4), torch.randn(10, 4), fractions=(1.0,))


def test_frechet_rejects_bad_inputs():
    with pytest.raises(EvaluationError):
        frechet_distance(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(EvaluationError):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))


# --- accuracy and diversity -------------------------------------------------


def test_conditional_accuracy_known_value():
    predicted = [0, 0, 1, 1, 2, 2, 2, 9]
    targets = [0, 1, 1, 1, 2, 2, 3, 9]  # correct: 0, 1, 1, 2, 2, 9 -> 6 of 8
    overall, per_class = conditional_accuracy(PixelCodeClassifier(), coded_images(predicted), torch.tensor(targets))
    assert overall == pytest.approx(6 / 8)
    assert len(per_class) == NUM_CLASSES
    assert per_class[0] == 1.0 and per_class[1] == pytest.approx(2 / 3) and per_class[2] == 1.0
    assert per_class[3] == 0.0 and per_class[9] == 1.0
    assert all(math.isnan(per_class[c]) for c in (4, 5, 6, 7, 8))


def test_conditional_accuracy_is_batched_and_restores_training_mode():
    model = tiny_classifier()
    model.train()
    x = images(1200)
    overall, _ = conditional_accuracy(model, x, torch.arange(1200) % 10)
    assert model.training  # evaluation must not leave the model in eval mode behind the caller's back
    model.eval()
    expected = float((model(x).argmax(1) == torch.arange(1200) % 10).float().mean())
    assert overall == pytest.approx(expected)


def test_conditional_accuracy_rejects_wrong_shapes():
    with pytest.raises(EvaluationError):
        conditional_accuracy(tiny_classifier(), torch.zeros(4, 28, 28), torch.zeros(4))
    with pytest.raises(EvaluationError):
        conditional_accuracy(tiny_classifier(), torch.zeros(4, 1, 28, 28), torch.zeros(3))


def test_diversity_known_values():
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0],  # class 0: one pair at distance 5
                          [0.0, 0.0], [1.0, 0.0], [2.0, 0.0],  # class 1: distances 1, 1, 2
                          [7.0, 7.0]])  # class 2: a single item
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    result = diversity(feats, labels)
    assert len(result) == NUM_CLASSES
    assert result[0] == pytest.approx(5.0)
    assert result[1] == pytest.approx(4 / 3)
    assert all(math.isnan(result[c]) for c in range(2, NUM_CLASSES))


# --- the real-vs-real floor ---------------------------------------------------------


def skewed_labels() -> torch.Tensor:
    # class c has 3 + 4c items, shuffled: class 0 has 3, class 9 has 39
    counts = [3 + 4 * c for c in range(NUM_CLASSES)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]


def test_balanced_draws_hold_the_same_count_of_every_class():
    labels = skewed_labels()
    draws = balanced_draws(labels, n_per_class=3, draws=4, seed=0)
    assert len(draws) == 4
    for draw in draws:
        assert torch.bincount(labels[draw], minlength=NUM_CLASSES).tolist() == [3] * NUM_CLASSES
        assert len(torch.unique(draw)) == len(draw)  # no image twice in one draw
    assert len({tuple(sorted(d.tolist())) for d in draws}) == 4  # the draws differ
    assert all(torch.equal(a, b) for a, b in zip(draws, balanced_draws(labels, 3, 4, seed=0)))
    assert not torch.equal(draws[0], balanced_draws(labels, 3, 4, seed=1)[0])
    # a class with fewer items than asked gives all it has; the rest still give n_per_class
    counts = torch.bincount(labels[balanced_draws(labels, 6, 1)[0]], minlength=NUM_CLASSES).tolist()
    assert counts == [3] + [6] * (NUM_CLASSES - 1)
    # a smaller draw is the start of each class's part of a larger one (same permutations)
    small, large = balanced_draws(labels, 2, 1)[0], balanced_draws(labels, 5, 1)[0]
    for c in range(NUM_CLASSES):
        assert small[labels[small] == c].tolist() == large[labels[large] == c][:2].tolist()


def test_floors_average_balanced_draws_and_see_each_train_image_once():
    labels = skewed_labels()
    generator = torch.Generator().manual_seed(0)
    # class-dependent features, so the class mix of a draw shows in its distance
    table = torch.randn(len(labels), 4, generator=generator) + 3 * torch.nn.functional.one_hot(labels % 4, 4)
    test_feats = torch.randn(50, 4, generator=generator)
    seen = []

    def train_features(indices):
        seen.append(indices.clone())
        return table[indices]

    floor, floor_inf = floors_from_features(train_features, labels, test_feats, n_per_class=3, seed=2)
    assert len(seen) == 1 and len(torch.unique(seen[0])) == len(seen[0])
    draws = balanced_draws(labels, 3, FLOOR_DRAWS, seed=2)
    expected = sum(frechet_distance(table[d], test_feats) for d in draws) / FLOOR_DRAWS
    assert floor == pytest.approx(expected, rel=1e-12)
    assert floor != pytest.approx(frechet_distance(table[draws[0]], test_feats), rel=1e-6)  # a mean, not one draw
    large = balanced_draws(labels, REAL_FLOOR_PER_CLASS, 1, seed=2)[0]
    assert floor_inf == pytest.approx(frechet_distance_infinity(table[large], test_feats), rel=1e-12)
