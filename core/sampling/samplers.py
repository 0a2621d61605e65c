"""The samplers: DPM-Solver++(2M) (the default), deterministic DDIM and strided DDPM behind one
API that yields every step.

    for step in sample_steps(generator, request):   # live previews
        show(step.x)                                   # (n,1,28,28) x_t in [-1,1]-ish
        if cancelled: break                            # stop between any two steps
    images = step.x                                    # after the last step: x_0

Class mixing: the request's `mix` method (core.model.mixing) turns weights summing to 1 into the
prediction; a one-class request is the same under every method. Each item i draws its
noise (x_T and every DDPM step) from its own torch.Generator seeded with seed + i, so a run
never touches the global RNG and the same request gives the same pixels on the same machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torchmultimodal.diffusion_labs.samplers.ddim import DDIModule
from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule

from ..checkpoint import Generator
from ..device import autocast, resolve_precision
from ..model.diffusion import make_predictor, make_schedule
from .dpm_solver import DPMSolverModule
from .limits import MAX_ITEMS
from .request import SampleRequest, check_guide


@dataclass
class SampleStep:
    index: int  # 1-based step number
    total: int
    t: int  # diffusion step the model was just evaluated at
    x: torch.Tensor  # (n,1,28,28), CPU float32; x_0 after the last step

    @property
    def done(self) -> bool:
        return self.index == self.total


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


def sample_steps(generator: Generator, request: SampleRequest, device: str | torch.device | None = None,
                 max_items: int = MAX_ITEMS) -> Iterator[SampleStep]:
    """Yield a SampleStep after every denoising step; the last one holds the final images in [-1, 1]."""
    request.validate(max_items)
    device = torch.device(device) if device is not None else next(generator.denoiser.parameters()).device
    request.precision = resolve_precision(request.precision, device)[0]  # what drew the pixels, for the recipe
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
        with torch.inference_mode(), autocast(request.precision, device):
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
