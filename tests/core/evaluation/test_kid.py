"""The kernel distance (KID): its closed form on constant sets, a brute-force U-statistic, no bias."""

from __future__ import annotations

import itertools

import pytest
import torch

from core.evaluation.classifier import EvaluationError
from core.evaluation.metrics import frechet_distance, kernel_distance


def cubic(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x @ y / len(x) + 1) ** 3)


def test_constant_sets_give_the_closed_form():
    u, v = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0, -1.0, 3.0])
    a, b = u.repeat(7, 1), v.repeat(9, 1)
    expected = cubic(u, u) + cubic(v, v) - 2 * cubic(u, v)  # every pair is the same pair
    mean, std = kernel_distance(a, b, subsets=5)
    assert mean == pytest.approx(expected) and std == pytest.approx(0.0, abs=1e-9)
    assert kernel_distance(a, a.clone(), subsets=3)[0] == pytest.approx(0.0, abs=1e-9)


def test_one_whole_subset_is_the_unbiased_u_statistic():
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator) + 0.5
    within = lambda s: sum(cubic(s[i], s[j]) for i, j in itertools.permutations(range(6), 2)) / 30  # noqa: E731
    across = sum(cubic(x, y) for x in a for y in b) / 36
    mean, _ = kernel_distance(a, b, subsets=1, subset_size=6)
    assert mean == pytest.approx(within(a) + within(b) - 2 * across)


def test_unbiased_where_the_frechet_distance_is_not():
    # 100 items against 4,000 from the same distribution, and 100 shifted by 0.3 in every feature:
    # the Frechet distance's bias is a third of the shift's distance, KID's is a few percent
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(4000, 16, generator=generator)
    same = [torch.randn(100, 16, generator=generator) for _ in range(8)]
    shifted = torch.randn(100, 16, generator=generator) + 0.3
    kid_same = sum(kernel_distance(s, real, subsets=20)[0] for s in same) / len(same)
    frechet_same = sum(frechet_distance(s, real) for s in same) / len(same)
    assert abs(kid_same) < 0.05 * kernel_distance(shifted, real, subsets=20)[0]
    assert frechet_same > 0.25 * frechet_distance(shifted, real)


def test_refuses_what_it_cannot_measure():
    with pytest.raises(EvaluationError, match="widths differ"):
        kernel_distance(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(EvaluationError, match="at least 2 rows"):
        kernel_distance(torch.zeros(1, 2), torch.zeros(3, 2))
    with pytest.raises(EvaluationError, match="non-finite"):
        kernel_distance(torch.full((3, 2), float("nan")), torch.zeros(3, 2))
