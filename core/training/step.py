"""One optimizer step with no host reads, and the on-device tally the trainer reads at its cadence.

A step is: the objective's forward (under bf16 autocast where the run's precision says so; through
torch.compile where compiling pays), backward, gradient clipping, fused AdamW and the EMA update.
Nothing in it reads a tensor back to the host, so a GPU never waits on Python between steps: the
loss, its smoothed value, the gradient norm and the first step whose loss was not finite stay on
the device in a LossTally until the trainer reads them for a log record or a checkpoint.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Callable

import torch

from ..device import autocast
from ..model.config import TrainConfig

# Compiling the step costs 60-95 s on a 2-core CPU and makes each training image about 1.05 ms
# cheaper there (bf16: 263 -> 364 images/s), so it is earned back after about 90,000 images.
# `auto` compiles a run with at least twice that left: three epochs of Fashion-MNIST.
COMPILE_MIN_IMAGES = 180_000


def lr_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warm-up to lr, then cosine decay to lr * min_lr_ratio at total_steps.

    The warm-up is capped at a tenth of the run, so a short smoke run still reaches its lr."""
    warmup = max(1, min(config.warmup_steps, total_steps // 10))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot work for `device` here, in a few words, or None."""
    if device.type == "cpu":
        names = [os.environ.get("CXX"), "c++", "g++", "clang++"]
        if not any(name and shutil.which(name) for name in names):
            return "no C++ compiler found (set CXX or install g++)"
        return None
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "this torch has no Triton"
        return None if has_triton() else "Triton is not installed"
    return f"torch.compile is not used on {device.type}"


def compile_plan(asked: bool | None, device: torch.device, remaining_images: int) -> tuple[bool, str]:
    """(compile the step or not, why). asked: True (--compile), False (--no-compile), None (auto)."""
    if asked is False:
        return False, "off (--no-compile)"
    missing = compiler_missing(device)
    if missing:
        return False, f"off: {missing}"
    if asked is None and remaining_images < COMPILE_MIN_IMAGES:
        return False, f"off (auto: {remaining_images:,} images to train; compiling pays from {COMPILE_MIN_IMAGES:,})"
    return True, "on" if asked else f"on (auto: {remaining_images:,} images to train)"


class StepRunner:
    """Forward and backward of `module` (the batch's inputs -> loss: x0 (B,1,28,28) and class weights
    (B,10) for the diffusion objective), compiled when asked. Full batches go through the compiled module; a smaller last batch of an epoch runs
    eagerly rather than compiling a second graph. If the first compiled step fails (no working
    compiler, an unsupported backend), that step is redone eagerly from the same RNG state, one
    notice says why, and the run trains on eagerly."""

    def __init__(self, module: torch.nn.Module, config: TrainConfig, precision: str, device: torch.device,
                 notice: Callable[[str], None], images_to_train: int):
        self.eager, self.batch_size, self.precision, self.device = module, config.batch_size, precision, device
        compiled, self.reason = compile_plan(config.compile, device, images_to_train)
        # --compile asked for what cannot work here: said once when the run starts
        self.unavailable = f"torch.compile {self.reason}; training eagerly" if config.compile and not compiled else None
        self.compiled = torch.compile(module) if compiled else None
        self.proven = False  # a compiled step has gone through forward and backward
        self.notice = notice

    @property
    def compiling(self) -> bool:
        return self.compiled is not None

    def _run(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with autocast(self.precision, self.device):
            loss = module(*inputs)  # () fp32: the objective scores in fp32
        loss.backward()
        return loss

    def __call__(self, inputs: tuple[torch.Tensor, ...], parameters: list[torch.nn.Parameter]) -> torch.Tensor:
        """The step's loss (a 0-d device tensor), its gradients accumulated into `parameters`;
        inputs: the batch's tensors, rows first."""
        if self.compiled is None or inputs[0].shape[0] != self.batch_size:
            return self._run(self.eager, inputs)
        if self.proven:
            return self._run(self.compiled, inputs)
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            loss = self._run(self.compiled, inputs)
        except Exception as error:  # the compiler's failure, whatever its type: fall back, never lose the run
            self.compiled, self.reason = None, f"off: failed ({type(error).__name__})"
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
            for p in parameters:
                p.grad = None
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            self.notice(f"torch.compile failed ({type(error).__name__}: {first}); training goes on eagerly")
            return self._run(self.eager, inputs)
        self.proven = True
        return loss


class LossTally:
    """The loss side of the steps since the last read, kept on the device.

    read() is the one host read: the last step's loss, the smoothed loss (an exponential moving
    average, 0.98 per step), the last gradient norm, and the first step whose loss was not finite
    (0 when none was)."""

    def __init__(self, device: torch.device, loss_smooth: float | None):
        self.device = device
        self.smooth = None if loss_smooth is None else torch.tensor(float(loss_smooth), device=device)
        self.last = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.first_bad = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0  # steps added (a host counter)

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, step: int) -> None:
        value = loss.detach().float()
        self.count += 1
        self.last, self.grad_norm = value, grad_norm.detach().float()
        self.smooth = value if self.smooth is None else 0.98 * self.smooth + 0.02 * value
        self.first_bad = torch.where((self.first_bad == 0) & ~torch.isfinite(value), step, self.first_bad)

    def packed(self) -> torch.Tensor:
        """(4,) fp32 on the device: loss, smoothed loss, gradient norm, first bad step."""
        smooth = self.smooth if self.smooth is not None else self.last
        return torch.stack([self.last, smooth, self.grad_norm, self.first_bad.float()])


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, over every parameter in one foreach call."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with its fused kernel (one per parameter group, no host reads), or foreach where this
    torch or device has no fused AdamW."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
