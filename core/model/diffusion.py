"""Forward process, prediction target and training loss, from torchmultimodal's diffusion_labs.

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)           linear betas 1e-4 -> 0.02, T = 1000
    noise target:  eps                                           (NoisePredictor, Ho et al. 2020)
    v target:      v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0    (VPredictor, Salimans & Ho 2022)
    loss = MSE(prediction, target) + lambda * L_vlb(variance)     (DiffusionHybridLoss, Nichol & Dhariwal eq. 16)
"""

from __future__ import annotations

import torch
from torch import nn
from torchmultimodal.diffusion_labs.modules.losses.diffusion_hybrid_loss import DiffusionHybridLoss
from torchmultimodal.diffusion_labs.predictors.noise_predictor import NoisePredictor
from torchmultimodal.diffusion_labs.predictors.v_predictor import VPredictor
from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule
from torchmultimodal.diffusion_labs.schedules.discrete_gaussian_schedule import (
    DiscreteGaussianSchedule,
    linear_beta_schedule,
)
from torchmultimodal.diffusion_labs.transforms.diffusion_transform import RandomDiffusionSteps

from .config import DiffusionConfig


class SeededSchedule(DiscreteGaussianSchedule):
    """DiscreteGaussianSchedule whose sampling noise can come from a private source.

    diffusion_labs draws per-step noise from the global RNG (`torch.randn_like`); a sampler
    sets `noise_source` to per-item torch.Generators, so a run is reproducible without
    touching (or racing on) global RNG state. Training leaves it None (global RNG, seeded
    and checkpointed by the trainer).
    """

    noise_source = None  # Callable[[Tensor], Tensor] | None

    def __call__(self, var_name: str, t: torch.Tensor, shape) -> torch.Tensor:
        """The schedule's `var_name` at steps t (B,), shaped (B, 1, ...) to broadcast against `shape`.

        diffusion_labs checks `(t != t.floor()).any()` on every call to interpolate between steps,
        a host read that stalls a GPU about fourteen times per training step; integer steps (every
        caller here) can never need it, so they index the table directly, to the same values."""
        if t.dtype.is_floating_point:
            return super().__call__(var_name, t, shape)
        table = getattr(self, var_name)
        if table.device != t.device:
            table = table.to(t.device)
            setattr(self, var_name, table)
        return table.gather(-1, t.long()).reshape(t.numel(), *((1,) * (len(shape) - 1)))

    def sample_noise(self, x_like: torch.Tensor) -> torch.Tensor:
        if self.noise_source is None:
            return torch.randn_like(x_like)
        return self.noise_source(x_like)


def make_schedule(config: DiffusionConfig) -> SeededSchedule:
    return SeededSchedule(linear_beta_schedule(config.steps))


def _clamp_x0(x0: torch.Tensor) -> torch.Tensor:
    return x0.clamp(-1.0, 1.0)  # pixels live in [-1, 1]


def make_predictor(config: DiffusionConfig, schedule: DiscreteGaussianSchedule, clamp: bool = False):
    if config.prediction == "v":
        cls = VPredictor
    elif config.prediction == "noise":
        cls = NoisePredictor
    else:
        raise ValueError(f"prediction must be 'v' or 'noise', not {config.prediction!r}")
    return cls(schedule, _clamp_x0 if clamp else None)


class DiffusionObjective(nn.Module):
    """One training step's loss for a batch: draw t and noise, noise x_0, predict, score.

    Wraps the denoiser in DDPModule (training mode returns the prediction plus the
    posterior mean/log-variance that the VLB term needs).
    """

    def __init__(self, denoiser: nn.Module, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.schedule = make_schedule(config)
        self.ddpm = DDPModule(denoiser, self.schedule, make_predictor(config, self.schedule), progress_bar=False)
        self.noiser = RandomDiffusionSteps(self.schedule, batched=True)
        self.loss = DiffusionHybridLoss(self.schedule, lmbda=config.hybrid_lambda)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.config.prediction == "noise":
            return noise
        shape = x0.shape
        v = self.schedule("sqrt_alphas_cumprod", t, shape) * noise - self.schedule("sqrt_compliment_alphas_cumprod", t, shape) * x0
        return v.to(x0.dtype)

    def forward(self, x0: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
        """x0 (B,1,28,28) in [-1,1], class_weights (B,10) -> scalar loss."""
        batch = self.noiser({"x": x0})  # adds t (B,), noise and xt (B,1,28,28)
        t, noise, xt = batch["t"], batch["noise"], batch["xt"]
        out = self.ddpm(xt, t, {"class_weights": class_weights})
        return self.loss(out.prediction.float(), self.target(x0, noise, t), out.mean.float(), out.log_variance.float(), x0, xt, t)
