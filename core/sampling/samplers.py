"""The samplers: DPM-Solver++(2M) (the default), deterministic DDIM and strided DDPM behind one
API that yields every step; and the student's, where a student is loaded beside the model.

    for step in sample_steps(generator, request):   # live previews
        show(step.x)                                   # (n,1,28,28) x_t in [-1,1]-ish
        if cancelled: break                            # stop between any two steps
    images = step.x                                    # after the last step: x_0

Class mixing: the request's `mix` method (core.model.mixing) turns weights summing to 1 into the
prediction; a one-class request is the same under every method. Each item i draws its
noise (x_T and every DDPM step) from its own torch.Generator seeded with seed + i, so a run
never touches the global RNG and the same request gives the same pixels on the same machine.

The student (sampler "student", core.training.distill): the generator's student draws the items in
1-4 calls, DDIM on its x0 predictions at STUDENT_TIMESTEPS, its guidance an input (one row per item,
no CFG); variations, edits, class switches and the film go through it as through the others. The
guidance interval does not apply: the student learned its teacher's default interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torchmultimodal.diffusion_labs.samplers.ddim import DDIModule
from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule

from ..autotune import measured_precision
from ..checkpoint import Generator
from ..device import autocast, resolve_precision
from ..model.config import as_dict
from ..model.diffusion import make_predictor, make_schedule
from ..model.unet import GUIDANCE_KEY
from . import steering
from .dpm_solver import DPMSolverModule
from .limits import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_ITEMS, DEFAULT_SAMPLER, MAX_ITEMS, STUDENT, STUDENT_TIMESTEPS
from .request import SampleRequest, check_guide, check_student


@dataclass
class SampleStep:
    index: int  # 1-based step number
    total: int
    t: int  # diffusion step the model was just evaluated at
    x: torch.Tensor  # (n,1,28,28), CPU float32; x_0 after the last step
    x_in: torch.Tensor | None = None  # film only: the x_t the model was evaluated on (n,1,28,28)
    x0_pred: torch.Tensor | None = None  # film only: the x_0 it predicted there, clamped to [-1, 1]

    @property
    def done(self) -> bool:
        return self.index == self.total


def eval_steps_for(sampler: str, steps: int, train_steps: int, start: int | None = None) -> torch.Tensor:
    """DDPM: `steps` evenly spaced timesteps (model calls = steps, includes t=0 so no noise is added last).
    DDIM and DPM-Solver: steps+1 timesteps, one model call per consecutive pair.
    The student: STUDENT_TIMESTEPS[steps] and 0, one call per consecutive pair.
    start: only the timesteps <= start (an edit's, core.sampling.steering); the student's own grid is
    too coarse to start from its nearest point, so it starts at `start` itself, then its grid below."""
    if sampler == STUDENT:
        grid = STUDENT_TIMESTEPS[steps]
        if start is not None:
            grid = [t for t in grid if t < start] + ([min(start, grid[0])] if start > 0 else [])
        return torch.tensor(sorted({0, *grid}), dtype=torch.long)
    count = steps if sampler == "ddpm" else steps + 1
    eval_steps = torch.linspace(0, train_steps - 1, count).round().long().unique()
    return eval_steps if start is None else eval_steps[eval_steps <= start]


def model_timesteps(sampler: str, eval_steps: torch.Tensor) -> list[int]:
    """The timesteps of the model calls, noisiest first: DDPM calls at every eval step, the others at all but 0."""
    timesteps = eval_steps.flip(0).tolist()
    return timesteps if sampler == "ddpm" else timesteps[:-1]


class ItemNoise:
    """Per-item generators: item i's noise comes from seed + i (or all from seed when shared)."""

    def __init__(self, seed: int, n: int, shared: bool):
        self.n, self.shared = n, shared
        self.generators = [torch.Generator().manual_seed(seed if shared else seed + i) for i in range(1 if shared else n)]

    def __call__(self, shape: torch.Size, dtype=torch.float32) -> torch.Tensor:
        item_shape = tuple(shape[1:])
        rows = [torch.randn(item_shape, generator=g, dtype=dtype) for g in self.generators]
        noise = torch.stack(rows)
        return noise.expand(self.n, *item_shape).contiguous() if self.shared else noise


def make_sampler(denoiser, config, sampler_name: str, steps: int, noise, device: torch.device,
                 start: int | None = None, same_model: Callable[[int, int], bool] | None = None):
    """The torchmultimodal sampler around `denoiser`, ready on `device`, and the timesteps it visits.

    noise(shape, dtype) supplies every draw (the schedule's noise_source), so no global RNG is used.
    start: visit only the timesteps <= start (an edit's); same_model: DPM-Solver++'s, default the view's."""
    schedule = make_schedule(config)
    schedule.noise_source = lambda x_like: noise(x_like.shape, x_like.dtype).to(x_like.device)  # no global RNG
    predictor = make_predictor(config, schedule, clamp=True)
    eval_steps = eval_steps_for(sampler_name, steps, config.steps, start)
    if sampler_name == "ddpm":
        sampler = DDPModule(denoiser, schedule, predictor, eval_steps=eval_steps, progress_bar=False)
    elif sampler_name == STUDENT:  # DPM-Solver++ at first order throughout is DDIM (eta = 0); x0 as it ends
        sampler = DPMSolverModule(denoiser, schedule, predictor, eval_steps, same_model=lambda s, t: False, x0_last=True)
    elif sampler_name == "dpm":
        sampler = DPMSolverModule(denoiser, schedule, predictor, eval_steps, same_model=same_model or _same_model(denoiser))
    else:
        sampler = DDIModule(denoiser, schedule, predictor, eval_steps=eval_steps, progress_bar=False, eta=0.0)
    timesteps = model_timesteps(sampler_name, eval_steps)
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


def _steered(denoiser, request: SampleRequest, timesteps: list[int], film: bool, device: torch.device):
    """The view inside a steered one (a class switch, the film's recorder) and DPM-Solver++'s
    same_model for it; without either, the view itself and None (its own guidance edges).
    timesteps: the model calls' timesteps, noisiest first."""
    if request.switch_to is None and not film:
        return denoiser, None
    switch_t = steering.switch_timestep(request, timesteps)
    if switch_t is None:
        return steering.SteeredDenoiser(denoiser, film=film), _same_model(denoiser)
    switched = {"class_weights": torch.tensor([request.switch_to] * request.n, device=device)}
    return (steering.SteeredDenoiser(denoiser, switch_t, switched, film),
            steering.across_switch(_same_model(denoiser), switch_t))


def model_view(generator: Generator, request: SampleRequest):
    """(the denoiser view a request samples, its diffusion config): the generator's student with the
    request's g as its input, or the generator with the request's guidance, interval, mix and, for
    autoguidance, its guide. Views are per call: the shared model is untouched."""
    if request.sampler == STUDENT:
        check_student(generator, request.sampler)
        return generator.student.denoiser.with_guidance(request.guidance), generator.student.diffusion_config
    check_guide(generator, request.autoguidance)
    guide = generator.guide.denoiser if request.autoguidance else None
    view = generator.denoiser.with_guidance(request.guidance, request.guidance_interval, request.mix,
                                            guide=guide, guide_weight=request.autoguidance)
    return view, generator.diffusion_config


def sample_steps(generator: Generator, request: SampleRequest, device: str | torch.device | None = None,
                 max_items: int = MAX_ITEMS, film: bool = False, item_guidance: torch.Tensor | None = None) -> Iterator[SampleStep]:
    """Yield a SampleStep after every denoising step; the last one holds the final images in [-1, 1].
    film: each step also carries the x_t the model saw and the x_0 it predicted (x_in, x0_pred).
    item_guidance: (n,) each item's own g in place of the request's (a teacher drawing a student's
    pairs, core.training.pairs; no recipe records it)."""
    request.validate(max_items)
    device = torch.device(device) if device is not None else next(generator.denoiser.parameters()).device
    request.precision = sampling_precision(generator, request.precision, device)[0]  # what drew the pixels, for the recipe
    denoiser, config = model_view(generator, request)
    steps = request.resolved_steps()
    noise = ItemNoise(request.seed, request.n, request.shared_noise)
    if request.variation_strength:
        noise = steering.VariedNoise(noise, ItemNoise(request.variation_seed, request.n, False), request.variation_strength)
    start = steering.edit_start(request, config.steps)
    eval_steps = eval_steps_for(request.sampler, steps, config.steps, start)
    if len(eval_steps) < 2:
        # strength 0, or below the grid's first step: nothing to denoise, the picture itself
        source = steering.image_tensor(request.init_image).expand(request.n, -1, -1, -1)
        yield SampleStep(1, 1, 0, finish(source, request.black_level), *((source, source) if film else ()))
        return
    denoiser, same_model = _steered(denoiser, request, model_timesteps(request.sampler, eval_steps), film, device)
    sampler, timesteps = make_sampler(denoiser, config, request.sampler, steps, noise, device, start, same_model)
    if film:
        denoiser.predictor = sampler.predictor
    x = noise((request.n, 1, 28, 28)).to(device)  # x_T ~ N(0, I)
    if start is not None:
        x = steering.noised_source(request.init_image, x, float(sampler.schedule.alphas_cumprod[timesteps[0]]))
    condition = {"class_weights": request.weight_matrix().to(device)}
    if item_guidance is not None:
        condition[GUIDANCE_KEY] = item_guidance.to(device)
    steps_iter = sampler.generator(x, condition)
    total = len(timesteps)
    for index, t in enumerate(timesteps, start=1):
        # inference mode and autocast are thread-local: enter them per step, never across a yield,
        # or a consumer that pauses (or abandons) the iterator would run its own code under them
        with torch.inference_mode(), autocast(request.precision, device):
            x = next(steps_iter)
            out = (finish(x, request.black_level) if index == total else x).float().cpu()
        yield SampleStep(index, total, int(t), out, *(denoiser.last if film else ()))


def finish(x: torch.Tensor, black_level: int) -> torch.Tensor:
    """Final x_0 (n,1,28,28): clamp to [-1, 1], and pixels that would round to <= black_level/255 become -1 (black)."""
    x = x.clamp(-1, 1)
    if black_level > 0:
        x = torch.where(x < -1 + (black_level + 0.5) / 127.5, torch.full_like(x, -1.0), x)  # to_uint8 rounds (x+1)*127.5
    return x


def sample(generator: Generator, request: SampleRequest, device=None, max_items: int = MAX_ITEMS,
           item_guidance: torch.Tensor | None = None) -> torch.Tensor:
    """Run to the end; (n,1,28,28) in [-1, 1]. item_guidance: as sample_steps'."""
    last = None
    for last in sample_steps(generator, request, device, max_items, item_guidance=item_guidance):
        pass
    return last.x


def sample_films(generator: Generator, request: SampleRequest, device=None) -> tuple[torch.Tensor, list[list]]:
    """Run to the end recording the film: the images, and each item's frames (steering.film_frame),
    the finished item last."""
    films = [[] for _ in range(request.n)]
    for step in sample_steps(generator, request, device, film=True):
        for index, frames in enumerate(films):
            frames.append(steering.film_frame(step, index))
    for index, frames in enumerate(films):
        frames.append(steering.final_frame(step, index))
    return step.x, films


def sampling_precision(generator: Generator, name: str, device: torch.device) -> tuple[str, str]:
    """("bf16" or "fp32", why): what precision `name` means for sampling `generator` on `device`.
    "auto" on a CPU with native bf16 times the default request's guided forward (DEFAULT_ITEMS
    items) in both precisions (core.autotune) and remembers the answer for this machine and model
    shape. One answer per model, whatever the batch: an item's pixels never depend on how many
    were drawn beside it."""
    work = {"model": as_dict(generator.model_config), "items": DEFAULT_ITEMS, "guided": True}
    return resolve_precision(name, device, lambda: measured_precision("sampling", work, default_call(generator, device)))


def default_call(generator: Generator, device: torch.device, items: int = DEFAULT_ITEMS, guided: bool = True) -> Callable[[str], None]:
    """One model call of the default request on `items` items, at a precision: inside the guidance
    interval (2 * items rows, CFG) or above it (items rows). For timing precisions, and for building
    a batch shape's kernels before the first generation needs them."""
    denoiser = generator.denoiser.with_guidance(DEFAULT_GUIDANCE[DEFAULT_SAMPLER], DEFAULT_GUIDANCE_INTERVAL)
    x = torch.randn((items, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((items,), DEFAULT_GUIDANCE_INTERVAL[1] // 2 if guided else 999, device=device)
    condition = {"class_weights": torch.eye(10, device=device)[torch.arange(items, device=device) % 10]}

    def run(precision: str) -> None:
        with torch.inference_mode(), autocast(precision, device):
            denoiser(x, t, condition)

    return run
