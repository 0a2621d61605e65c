"""Steering a request beyond its classes and guidance: variations, edits from a picture, class
switches part-way through the steps, and the denoising film. core.sampling.samplers uses each only
when the request (or the caller, for the film) asks for it, so a request without them runs exactly
the loop it always ran.

Variations (AUTOMATIC1111's variation seed and strength). Every noise draw of item i, x_T and each
DDPM step, is the spherical interpolation of the item's own draw and the draw of the generator seeded
variation_seed + i:

    slerp(s, a, b) = sin((1-s) theta) / sin(theta) a + sin(s theta) / sin(theta) b,   cos(theta) = a.b / |a||b|

Two independent Gaussian vectors of 784 values are nearly orthogonal, so the result keeps their
norm and stays Gaussian, where a straight mix (1-s) a + s b would shrink it towards the origin by
up to 1/sqrt(2) and draw faint, blurred items. s = 0 gives the item's own draws exactly and s = 1
the variation seed's, so a strength-1 variation is the plain item of that seed.

Edits (SDEdit, Meng et al. 2022). The source x_0 is noised to the largest timestep t0 <= strength * T
of the sampler's own grid, x_t0 = sqrt(abar_t0) x_0 + sqrt(1 - abar_t0) eps with the item's own first
draw eps, and only the grid's timesteps <= t0 are denoised: strength s costs about s of the steps.

Class switches (prompt editing's [from:to:when]). The first round(switch_at * K) of the K model
calls ask for the request's classes, the rest for switch_to. DPM-Solver++ restarts at first order
at the switch, as at a guidance-interval edge: its second-order step extrapolates from the previous
x0 prediction, which was made for the other classes.

The film: the model's input x_t and its predicted x_0 (the sampler's own predictor, clamped) at every
model call, for a caller that asks for them (SampleStep.x_in, SampleStep.x0_pred).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..images import to_uint8
from .request import SampleRequest


def slerp(strength: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row (item) of (n, ...) tensors: strength 0 gives a, 1 gives b, in between the great-circle
    path between them (a straight line where they are parallel)."""
    rows_a, rows_b = a.double().flatten(1), b.double().flatten(1)
    cos = (rows_a * rows_b).sum(1) / (rows_a.norm(dim=1) * rows_b.norm(dim=1)).clamp_min(1e-30)
    theta = cos.clamp(-1, 1).acos()  # (n,)
    sin = theta.sin()
    parallel = sin.abs() < 1e-6
    sin = torch.where(parallel, torch.ones_like(sin), sin)
    weight_a = torch.where(parallel, torch.full_like(theta, 1 - strength), ((1 - strength) * theta).sin() / sin)
    weight_b = torch.where(parallel, torch.full_like(theta, strength), (strength * theta).sin() / sin)
    mixed = weight_a[:, None] * rows_a + weight_b[:, None] * rows_b
    return mixed.reshape(a.shape).to(a.dtype)


class VariedNoise:
    """A noise source whose every draw is slerp(strength, the item's draw, the variation's draw)."""

    def __init__(self, own: Callable, variation: Callable, strength: float):
        self.own, self.variation, self.strength = own, variation, strength

    def __call__(self, shape: torch.Size, dtype=torch.float32) -> torch.Tensor:
        return slerp(self.strength, self.own(shape, dtype), self.variation(shape, dtype))


def edit_start(request: SampleRequest, train_steps: int) -> int | None:
    """The largest timestep an edit may start from (strength * T), or None without an init image."""
    if request.init_image is None:
        return None
    return math.floor(request.init_strength * train_steps)


def image_tensor(pixels: bytes) -> torch.Tensor:
    """IMAGE_BYTES grey levels -> (1, 1, 28, 28) in [-1, 1], as the dataset's items are scaled."""
    grey = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).float()
    return (grey / 127.5 - 1).reshape(1, 1, 28, 28)


def noised_source(pixels: bytes, noise: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x_t0 = sqrt(abar) x_0 + sqrt(1 - abar) eps for every item; noise (n,1,28,28) is each item's eps."""
    source = image_tensor(pixels).to(noise.device)
    return math.sqrt(alpha_bar) * source + math.sqrt(1 - alpha_bar) * noise


def switch_timestep(request: SampleRequest, timesteps: list[int]) -> int | None:
    """The timestep of the first model call that asks for switch_to (calls at t <= it do), or None."""
    if request.switch_to is None:
        return None
    first = math.floor(request.switch_at * len(timesteps) + 0.5)
    return timesteps[first] if first < len(timesteps) else None


def across_switch(same_model: Callable[[int, int], bool], switch_t: int) -> Callable[[int, int], bool]:
    """same_model, and also False between two calls on either side of the switch (DPM-Solver++ restarts)."""
    return lambda s, t: same_model(s, t) and ((s <= switch_t) == (t <= switch_t))


class SteeredDenoiser(nn.Module):
    """The denoiser view with a class switch and/or the film's recorder around it: the samplers call
    it as they call the denoiser."""

    def __init__(self, denoiser: nn.Module, switch_t: int | None = None, switched: dict | None = None,
                 film: bool = False):
        super().__init__()
        self.denoiser, self.switch_t, self.switched = denoiser, switch_t, switched
        self.film = film
        self.predictor = None  # the sampler's, set once it exists (film only)
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (x_t, predicted x_0) of the latest call

    def forward(self, x: torch.Tensor, t: torch.Tensor, conditional_inputs: dict):
        if self.switch_t is not None and int(t[0]) <= self.switch_t:  # samplers pass one t for the whole batch
            conditional_inputs = self.switched
        out = self.denoiser(x, t, conditional_inputs)
        if self.film:
            x0 = self.predictor.predict_x0(out.prediction, x, t)
            self.last = (x.float().cpu(), x0.float().cpu())
        return out


def film_frame(step, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Item `index` of a SampleStep sampled with film=True: (label, x_t, predicted x_0), uint8 (28, 28)."""
    return (f"step {step.index}/{step.total}  t={step.t}", to_uint8(step.x_in[index, 0]), to_uint8(step.x0_pred[index, 0]))


def final_frame(step, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The finished item, shown on both sides: the film's last frame."""
    item = to_uint8(step.x[index, 0])
    return ("done", item, item)
