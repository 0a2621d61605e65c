"""Forward process, prediction target and training loss, from torchmultimodal's diffusion_labs.

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)           linear betas 1e-4 -> 0.02, T = 1000
    noise target:  eps                                           (NoisePredictor, Ho et al. 2020)
    v target:      v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0    (VPredictor, Salimans & Ho 2022)
    loss = MSE(prediction, target) + lambda * L_vlb(variance)     (DiffusionHybridLoss, Nichol & Dhariwal eq. 16)

The MSE term can be weighted per noise level, w(t) (loss_weights): the prediction and its target
are both scaled by sqrt(w(t)) before diffusion_labs' loss sees them, so its MSE becomes
mean(w(t) * (prediction - target)^2) and the VLB term is left as it was.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmultimodal.diffusion_labs.modules.losses.diffusion_hybrid_loss import (
    DiffusionHybridLoss,
)
from torchmultimodal.diffusion_labs.predictors.noise_predictor import NoisePredictor
from torchmultimodal.diffusion_labs.predictors.v_predictor import VPredictor
from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule
from torchmultimodal.diffusion_labs.schedules.discrete_gaussian_schedule import (
    DiscreteGaussianSchedule,
    linear_beta_schedule,
)
from torchmultimodal.diffusion_labs.transforms.diffusion_transform import (
    RandomDiffusionSteps,
)

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


LOSS_WEIGHTINGS = ("uniform", "min-snr", "edm")
EDM_P_MEAN, EDM_P_STD, EDM_SIGMA_DATA = -1.2, 1.2, 0.5  # Karras et al. 2022, table 1 (training)


def loss_weights(config: DiffusionConfig, schedule: DiscreteGaussianSchedule) -> torch.Tensor | None:
    """(T,) weights on the prediction's squared error at each step t, mean 1 over t (so only where the
    loss puts its emphasis changes, not its scale against the VLB term); None for "uniform".

    With SNR_t = abar_t / (1 - abar_t), an error in x_0 costs SNR_t + 1 times as much in v and SNR_t
    times as much in noise, so a weighting stated on x_0 is divided by that factor:
      min-snr  x_0 weight min(SNR_t, gamma): high-noise steps, where the loss is largest and least
               informative, stop dominating (Hang et al. 2023);
      edm      sigma_t = SNR_t^-1/2 drawn log-normal(P_mean, P_std), x_0 weight
               (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al. 2022): the log-normal's
               probability of each discrete step becomes a weight on uniformly drawn t.
    """
    kind = config.loss_weighting
    if kind not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, not {kind!r}")
    if kind == "uniform":
        return None
    abar = schedule.alphas_cumprod.double()  # (T,)
    snr = abar / (1 - abar)
    per_x0 = snr + 1 if config.prediction == "v" else snr  # the target's error per unit of x_0 error
    if kind == "min-snr":
        if not config.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be positive, not {config.min_snr_gamma!r}")
        weight = snr.clamp(max=config.min_snr_gamma) / per_x0
    else:
        log_sigma = -0.5 * snr.log()  # (T,) increasing in t
        edges = torch.cat([log_sigma[:1] - (log_sigma[1] - log_sigma[0]) / 2, (log_sigma[1:] + log_sigma[:-1]) / 2,
                           log_sigma[-1:] + (log_sigma[-1] - log_sigma[-2]) / 2])  # (T+1,) each step's share of log sigma
        cdf = 0.5 * (1 + torch.erf((edges - EDM_P_MEAN) / (EDM_P_STD * math.sqrt(2))))
        sigma2 = 1 / snr
        edm_lambda = (sigma2 + EDM_SIGMA_DATA**2) / (sigma2 * EDM_SIGMA_DATA**2)
        weight = (cdf[1:] - cdf[:-1]) * edm_lambda / per_x0
    return (weight / weight.mean()).float()


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
        weights = loss_weights(config, self.schedule)
        self.register_buffer("root_weights", None if weights is None else weights.sqrt(), persistent=False)  # (T,)

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
        prediction, target = out.prediction.float(), self.target(x0, noise, t)  # (B,1,28,28) each
        if self.root_weights is not None:
            root = self.root_weights[t][:, None, None, None]  # (B,1,1,1): sqrt(w(t)) on both sides of the MSE
            prediction, target = prediction * root, target * root
        return self.loss(prediction, target, out.mean.float(), out.log_variance.float(), x0, xt, t)
