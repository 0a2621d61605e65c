"""Sampling: one API over strided DDPM and deterministic DDIM, yielding every step.

    for step in sample_steps(generator, request):   # live previews
        show(step.x)                                   # (n,1,28,28) x_t in [-1,1]-ish
        if cancelled: break                            # stop between any two steps
    images = step.x                                    # after the last step: x_0

Class mixing: the request's `mix` method (core.mixing) turns weights summing to 1 into the
prediction; a one-class request is the same under every method. Each item i draws its
noise (x_T and every DDPM step) from its own torch.Generator seeded with seed + i, so a run
never touches the global RNG and the same request gives the same pixels on the same machine.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, asdict
from typing import Callable, Iterator, Sequence

import torch
from torchmultimodal.diffusion_labs.samplers.ddim import DDIModule
from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule

from .checkpoint import Generator
from .classes import DEFAULT_MIX, NUM_CLASSES, ClassSpecError, normalise_weights
from .diffusion import make_predictor, make_schedule
from .dpm_solver import DPMSolverModule
from .mixing import check_method

from .limits import (  # noqa: F401 (the request's limits and defaults, re-exported for callers)
    AUTOGUIDANCE_RANGE, DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_ITEMS, DEFAULT_SAMPLER, DEFAULT_STEPS, GUIDANCE_RANGE,
    MAX_BLACK_LEVEL, MAX_EVAL_BATCH, MAX_ITEMS, MAX_SEED, MAX_STEPS, MIN_STEPS, SAMPLERS,
)


class SampleRequestError(ValueError):
    """A generation parameter is out of range; the message is one line."""


@dataclass
class SampleRequest:
    """Everything that determines the pixels (the "recipe" stored in every exported PNG)."""

    class_weights: list[float]  # 10 weights summing to 1, or rows: one per item
    n: int = DEFAULT_ITEMS
    guidance: float | None = None  # g in (1+g)*cond - g*uncond; 0 = no guidance; None -> DEFAULT_GUIDANCE[sampler]
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None  # None -> DEFAULT_STEPS[sampler]
    seed: int = 0
    shared_noise: bool = False  # every item uses seed (not seed + i): blend strips
    per_item_weights: list[list[float]] | None = None  # overrides class_weights per item
    guidance_interval: tuple[int, int] | None = DEFAULT_GUIDANCE_INTERVAL  # guide at lo <= t <= hi; None = every t
    black_level: int = DEFAULT_BLACK_LEVEL  # final pixels <= this (of 255) become 0; 0 = raw output
    mix: str = DEFAULT_MIX  # how a multi-class row becomes the prediction (core.mixing)
    autoguidance: float = 0.0  # w: push away from the generator's guide model where guidance acts; 0 = CFG alone

    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS.get(self.sampler, DEFAULT_STEPS[DEFAULT_SAMPLER])

    def validate(self, max_items: int = MAX_ITEMS) -> "SampleRequest":
        try:
            check_method(self.mix)
        except ValueError as error:
            raise SampleRequestError(str(error)) from None
        if self.sampler not in SAMPLERS:
            raise SampleRequestError(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= max_items:
            raise SampleRequestError(f"number of items must be 1-{max_items}, not {self.n!r}")
        if self.guidance is None:
            self.guidance = DEFAULT_GUIDANCE[self.sampler]
        steps = self.resolved_steps()
        if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_STEPS <= steps <= MAX_STEPS:
            raise SampleRequestError(f"steps must be {MIN_STEPS}-{MAX_STEPS}, not {steps!r}")
        g = self.guidance
        if not isinstance(g, (int, float)) or not math.isfinite(g) or not GUIDANCE_RANGE[0] <= g <= GUIDANCE_RANGE[1]:
            raise SampleRequestError(f"guidance must be between {GUIDANCE_RANGE[0]:g} and {GUIDANCE_RANGE[1]:g}, not {g!r}")
        self.guidance_interval = _check_interval(self.guidance_interval)
        w = self.autoguidance
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not AUTOGUIDANCE_RANGE[0] <= w <= AUTOGUIDANCE_RANGE[1]:
            raise SampleRequestError(f"autoguidance must be between {AUTOGUIDANCE_RANGE[0]:g} and {AUTOGUIDANCE_RANGE[1]:g}, not {w!r}")
        level = self.black_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_BLACK_LEVEL:
            raise SampleRequestError(f"black level must be a whole number 0-{MAX_BLACK_LEVEL}, not {level!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SampleRequestError(f"seed must be a whole number 0-{MAX_SEED}, not {self.seed!r}")
        try:
            self.class_weights = _renormalise(self.class_weights)
            if self.per_item_weights is not None:
                if len(self.per_item_weights) != self.n:
                    raise SampleRequestError(f"per-item weights give {len(self.per_item_weights)} rows for {self.n} items")
                self.per_item_weights = [_renormalise(row) for row in self.per_item_weights]
        except ClassSpecError as error:
            raise SampleRequestError(str(error)) from None
        return self

    def weight_matrix(self) -> torch.Tensor:
        """(n, 10) class weights."""
        rows = self.per_item_weights or [self.class_weights] * self.n
        return torch.tensor(rows, dtype=torch.float32)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["steps"] = self.resolved_steps()
        return data


def _check_interval(interval) -> tuple[int, int] | None:
    if interval is None:
        return None
    try:
        lo, hi = interval
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)):
            raise TypeError
    except (TypeError, ValueError):
        raise SampleRequestError(f"guidance interval must be two whole steps lo:hi, not {interval!r}") from None
    if not 0 <= lo <= hi < MAX_STEPS:
        raise SampleRequestError(f"guidance interval must satisfy 0 <= lo <= hi <= {MAX_STEPS - 1}, not {lo}:{hi}")
    return (lo, hi)


def parse_guidance_interval(text: str) -> tuple[int, int] | None:
    """'0:600' -> (0, 600); 'all' -> None (guide at every step). SampleRequestError otherwise."""
    text = text.strip().lower()
    if text in ("all", "full", "none"):
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        interval = (int(parts[0]), int(parts[1]))
    except ValueError:
        raise SampleRequestError(f"guidance interval must be lo:hi (e.g. 0:600) or 'all', not {text!r}") from None
    return _check_interval(interval)


def _renormalise(weights: Sequence[float]) -> list[float]:
    if len(weights) != NUM_CLASSES:
        raise ClassSpecError(f"expected {NUM_CLASSES} class weights, got {len(weights)}")
    try:
        values = {i: float(w) for i, w in enumerate(weights)}
    except (TypeError, ValueError):
        raise ClassSpecError("class weights must be numbers") from None
    return normalise_weights(values)


@dataclass
class SampleStep:
    index: int  # 1-based step number
    total: int
    t: int  # diffusion step the model was just evaluated at
    x: torch.Tensor  # (n,1,28,28), CPU float32; x_0 after the last step

    @property
    def done(self) -> bool:
        return self.index == self.total


PRECISION_ENV = "FASHION_TUI_PRECISION"  # "auto" (default), "fp32" or "bf16"


def sampling_autocast(device: torch.device):
    """bf16 autocast on CPUs with AMX tiles (the model runs ~1.35x faster; pixels move by
    0.26/255 on average, max ~4/255, measured on the shipped model), fp32 everywhere else.
    $FASHION_TUI_PRECISION=fp32|bf16 overrides. The choice is fixed per machine, so the same
    recipe still gives the same pixels there."""
    choice = os.environ.get(PRECISION_ENV, "auto").lower()
    if device.type != "cpu" or choice == "fp32":
        return contextlib.nullcontext()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if choice == "bf16" or (choice == "auto" and amx):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eval_steps_for(sampler: str, steps: int, train_steps: int) -> torch.Tensor:
    """DDPM: `steps` evenly spaced timesteps (model calls = steps, includes t=0 so no noise is added last).
    DDIM and DPM-Solver: steps+1 timesteps, one model call per consecutive pair."""
    count = steps if sampler == "ddpm" else steps + 1
    return torch.linspace(0, train_steps - 1, count).round().long().unique()


class _ItemNoise:
    """Per-item generators: item i's noise comes from seed + i (or all from seed when shared)."""

    def __init__(self, seed: int, n: int, shared: bool):
        self.n, self.shared = n, shared
        self.generators = [torch.Generator().manual_seed(seed if shared else seed + i) for i in range(1 if shared else n)]

    def __call__(self, shape: torch.Size, dtype=torch.float32) -> torch.Tensor:
        item_shape = tuple(shape[1:])
        rows = [torch.randn(item_shape, generator=g, dtype=dtype) for g in self.generators]
        noise = torch.stack(rows)
        return noise.expand(self.n, *item_shape).contiguous() if self.shared else noise


def make_sampler(denoiser, config, sampler_name: str, steps: int, noise, device: torch.device):
    """The torchmultimodal sampler around `denoiser`, ready on `device`, and the timesteps it visits.

    noise(shape, dtype) supplies every draw (the schedule's noise_source), so no global RNG is used."""
    schedule = make_schedule(config)
    schedule.noise_source = lambda x_like: noise(x_like.shape, x_like.dtype).to(x_like.device)  # no global RNG
    predictor = make_predictor(config, schedule, clamp=True)
    eval_steps = eval_steps_for(sampler_name, steps, config.steps)
    if sampler_name == "ddpm":
        sampler = DDPModule(denoiser, schedule, predictor, eval_steps=eval_steps, progress_bar=False)
        timesteps = eval_steps.flip(0).tolist()
    elif sampler_name == "dpm":
        sampler = DPMSolverModule(denoiser, schedule, predictor, eval_steps, same_model=_same_model(denoiser))
        timesteps = eval_steps.flip(0)[:-1].tolist()
    else:
        sampler = DDIModule(denoiser, schedule, predictor, eval_steps=eval_steps, progress_bar=False, eta=0.0)
        timesteps = eval_steps.flip(0)[:-1].tolist()
    # The samplers build their step tables (eval_steps, eval_steps_map) as CPU buffers and index
    # them with the timestep tensor, which lives on the sampling device, so the tables must live
    # there too. Move only these buffers: sampler.to() would also walk the shared denoiser.
    for name, buffer in list(sampler.named_buffers(recurse=False)):
        setattr(sampler, name, buffer.to(device))
    return sampler.eval(), timesteps


def _same_model(denoiser) -> Callable[[int, int], bool]:
    """Whether the denoiser view runs the same model at steps s and t: not across a guidance edge."""
    interval = getattr(denoiser, "guidance_interval", None)
    if interval is None or (getattr(denoiser, "guidance", 0.0) == 0 and not getattr(denoiser, "guide_weight", 0.0)):
        return lambda s, t: True
    lo, hi = interval
    return lambda s, t: (lo <= s <= hi) == (lo <= t <= hi)


def check_guide(generator, autoguidance: float) -> None:
    """SampleRequestError (one line) when autoguidance is asked of a generator without a guide."""
    if autoguidance and getattr(generator, "guide", None) is None:
        raise SampleRequestError("autoguidance needs a guide model, and this generator has none "
                                 "(a NAME-guide.pt beside NAME.pt); set autoguidance to 0")


def sample_steps(generator: Generator, request: SampleRequest, device: str | torch.device | None = None,
                 max_items: int = MAX_ITEMS) -> Iterator[SampleStep]:
    """Yield a SampleStep after every denoising step; the last one holds the final images in [-1, 1]."""
    request.validate(max_items)
    device = torch.device(device) if device is not None else next(generator.denoiser.parameters()).device
    check_guide(generator, request.autoguidance)
    guide = generator.guide.denoiser if request.autoguidance else None
    # per-call g, interval, mix and guide: the shared model is untouched
    denoiser = generator.denoiser.with_guidance(request.guidance, request.guidance_interval, request.mix,
                                                guide=guide, guide_weight=request.autoguidance)
    config = generator.diffusion_config
    steps = request.resolved_steps()
    noise = _ItemNoise(request.seed, request.n, request.shared_noise)

    sampler, timesteps = make_sampler(denoiser, config, request.sampler, steps, noise, device)
    x = noise((request.n, 1, 28, 28)).to(device)  # x_T ~ N(0, I)
    condition = {"class_weights": request.weight_matrix().to(device)}
    steps_iter = sampler.generator(x, condition)
    total = len(timesteps)
    for index, t in enumerate(timesteps, start=1):
        # inference mode and autocast are thread-local: enter them per step, never across a yield,
        # or a consumer that pauses (or abandons) the iterator would run its own code under them
        with torch.inference_mode(), sampling_autocast(device):
            x = next(steps_iter)
            out = (finish(x, request.black_level) if index == total else x).float().cpu()
        yield SampleStep(index, total, int(t), out)


def finish(x: torch.Tensor, black_level: int) -> torch.Tensor:
    """Final x_0 (n,1,28,28): clamp to [-1, 1], and pixels that would round to <= black_level/255 become -1 (black)."""
    x = x.clamp(-1, 1)
    if black_level > 0:
        x = torch.where(x < -1 + (black_level + 0.5) / 127.5, torch.full_like(x, -1.0), x)  # to_uint8 rounds (x+1)*127.5
    return x


def sample(generator: Generator, request: SampleRequest, device=None, max_items: int = MAX_ITEMS) -> torch.Tensor:
    """Run to the end; (n,1,28,28) in [-1, 1]."""
    last = None
    for last in sample_steps(generator, request, device, max_items):
        pass
    return last.x


def blend_weights(first: int, second: int, count: int) -> list[list[float]]:
    """Rows stepping from 100% `first` to 100% `second` (the seed's sneaker + boot experiment)."""
    rows = []
    for i in range(count):
        share = i / (count - 1) if count > 1 else 0.0
        row = [0.0] * NUM_CLASSES
        row[first] += 1.0 - share
        row[second] += share
        rows.append(row)
    return rows
