"""DPM-Solver++(2M): a second-order multistep sampler on the model's x0 predictions (Lu et al. 2022).

    alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t)
    step s -> t, h = lambda_t - lambda_s:
        x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) D
        first order   D = x0_s                                       (exactly DDIM with eta = 0)
        second order  D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev,  r = h_prev / h

Each step costs one model call, like DDIM, but the multistep correction makes ~15 steps do the
work of DDIM's 50. Steps that follow a change of the model itself fall back to first order:
where guidance switches on or off (the guidance interval's edges) the x0 predictions jump, and
extrapolating across that jump overshoots. So is the last step, into t = 0: sigma_0 is tiny, so
its h is several times the step before and r = h_prev / h is small, and the second-order weight
1/(2r) would amplify the difference of two x0 predictions into visible speckle (diffusers'
`lower_order_final`).

At first order throughout (same_model always False) it is DDIM with eta = 0, written in alpha and sigma:

    x_t = alpha_t x0_s + sigma_t eps_s,   eps_s = (x_s - alpha_s x0_s) / sigma_s

which is the student's sampler (core.sampling.samplers), whose last step returns x0_s itself (x0_last):
a student learns x0 at its few timesteps, and the step into t = 0 would only add sigma_0 eps back.

Same interface as diffusion_labs' samplers: `generator(x_T, condition)` yields x after every step.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn


class DPMSolverModule(nn.Module):
    def __init__(self, model: nn.Module, schedule, predictor, eval_steps: torch.Tensor,
                 same_model: Callable[[int, int], bool] = lambda s, t: True, x0_last: bool = False):
        """eval_steps: ascending timesteps including 0; one model call at each but 0.
        same_model(s, t): whether the model at step t is the one at step s (False across a guidance edge).
        x0_last: the last step returns its x0 prediction rather than stepping to t = 0."""
        super().__init__()
        self.model, self.schedule, self.predictor = model, schedule, predictor
        self.same_model, self.x0_last = same_model, x0_last
        self.register_buffer("eval_steps", eval_steps.sort().values.long())
        # the step coefficients as Python floats, read on the host: no device sync per step
        abar = schedule.alphas_cumprod.detach().double().cpu()  # (T,)
        self._alpha, self._sigma = abar.sqrt().tolist(), (1 - abar).sqrt().tolist()

    def _lambda(self, t: int) -> float:
        return math.log(self._alpha[t] / self._sigma[t])

    def generator(self, x: torch.Tensor, c: dict | None = None) -> Iterator[torch.Tensor]:
        steps = self.eval_steps.flip(0).tolist()  # T-1 ... 0
        previous = None  # (x0, h, step) of the last step, for the second-order correction
        for index, (s, t) in enumerate(zip(steps[:-1], steps[1:])):
            timestep = torch.full((x.shape[0],), s, device=x.device, dtype=torch.long)
            out = self.model(x, timestep, c)
            x0 = self.predictor.predict_x0(out.prediction, x, timestep).float()  # (B,1,28,28), clamped
            h = self._lambda(t) - self._lambda(s)
            last = index == len(steps) - 2
            if previous is not None and self.same_model(previous[2], s) and not last:
                r = previous[1] / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous[0]
            else:
                d = x0
            if last and self.x0_last:
                x = x0.to(x.dtype)
            else:
                x = (self._sigma[t] / self._sigma[s] * x.float() - self._alpha[t] * math.expm1(-h) * d).to(x.dtype)
            previous = (x0, h, s)
            yield x
