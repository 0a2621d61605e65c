"""Class mixing: how a weighted mix of classes becomes the denoiser's prediction.

    weights W (B, 10), rows summing to 1; class table E (10, D); null embedding n (1, D)

    "average"  e = W @ E                                   one condition per item (the original design)
    "norm"     e = W @ E, rescaled to sum_i w_i |E_i|      one condition per item
    "compose-all"  c = sum_i w_i model(x, E_i)             one model call per picked class, then CFG
                   pred = (1 + g) c - g model(x, n)        = u + (1+g) sum_i w_i (c_i - u)
    "compose"      compose-all where guidance acts, "norm" at the unguided steps (one call there)

The rows of E are nearly orthogonal, so a 50/50 average is about 0.7x as long as either row and
lies halfway to the null embedding: the network reads it as partly unconditional and draws a
faint ghost. "norm" keeps the average's direction at the rows' length, but that point is still
off the trained rows and adds speckle. Composing never feeds the network a condition it was not
trained on: it mixes per-class predictions (composable diffusion, Liu et al. 2022: the weighted
sum of scores of a product of experts). Where guidance acts this costs one call per extra class
beside CFG's two; the unguided steps (the noisiest, which fix the coarse shape, and the last)
look the same with the norm mix's single call, so "compose" spends the extra calls only where
guidance acts (bench/blend_quality.py measures both).

For a one-class row every method gives exactly the plain class's prediction.
"""

from __future__ import annotations

import torch

from ..classes import MIX_METHODS


def check_method(method: str) -> str:
    if method not in MIX_METHODS:
        raise ValueError(f"mix method must be one of {', '.join(MIX_METHODS)}, not {method!r}")
    return method


def single_class(weights: torch.Tensor) -> torch.Tensor:
    """(B, 10) -> (B,) bool: rows with exactly one positive weight."""
    return (weights > 0).sum(dim=1) == 1


def embed(weights: torch.Tensor, table: torch.Tensor, method: str) -> torch.Tensor:
    """One condition per item: (B, 10) weights, (10, D) class table -> (B, D).

    Composing lands here for rows and steps it does not compose (training, one-class rows)."""
    weights = weights.to(table.dtype)
    mixed = weights @ table  # (B, D); a one-hot row gives its class's row exactly
    if method != "norm":
        return mixed
    target = weights @ table.norm(dim=1)  # (B,) weighted mean length of the picked rows
    scale = target / mixed.norm(dim=1).clamp_min(1e-8)
    return torch.where(single_class(weights)[:, None], mixed, mixed * scale[:, None])


def composed_pairs(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (item, class, weight) triples a composed prediction evaluates: (P,), (P,), (P,)."""
    items, classes = (weights > 0).nonzero(as_tuple=True)
    return items, classes, weights[items, classes]


def weighted_sum(values: torch.Tensor, items: torch.Tensor, pair_weights: torch.Tensor, batch: int) -> torch.Tensor:
    """(P, ...) per-pair values -> (B, ...) sum over each item's pairs of w * value."""
    scaled = values * pair_weights.to(values.dtype).view(-1, *([1] * (values.dim() - 1)))
    out = torch.zeros((batch, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, items, scaled)
