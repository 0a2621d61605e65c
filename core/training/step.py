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
import time
from typing import Callable

import torch

from ..device import autocast
from ..model.config import TrainConfig

# Compiling the step costs 60-95 s on a 2-core CPU. Where it pays it makes each training image
# about 1.05 ms cheaper (an AMD Zen 4 host, bf16: 263 -> 364 images/s), earned back after about
# 90,000 images; elsewhere it makes steps slower (an Intel host, fp32: 195 -> 176 images/s). So
# `auto` tries it only on a run with at least twice that left (three epochs of Fashion-MNIST), and
# keeps it only where it measured faster: TRIAL_STEPS full batches are timed eagerly (after
# WARMUP_STEPS), then the step is compiled and TRIAL_STEPS more are timed compiled. The verdict is
# remembered for the machine (core.autotune), so a later run there compiles at once, or never
# (unless what it saves per step, over the run left, is less than the compile it costs).
COMPILE_MIN_IMAGES = 180_000
WARMUP_STEPS = 2
TRIAL_STEPS = 8
KEEP_COMPILED_AT = 1.03  # compiled steps must take at most 1/1.03 of the eager ones' time


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
    (B,10) for the diffusion objective), compiled when asked, or when `auto` measures it faster (the
    trial above). Full batches go through the compiled module; a smaller last batch of an epoch runs
    eagerly rather than compiling a second graph. If the first compiled step fails (no working
    compiler, an unsupported backend), that step is redone eagerly from the same RNG state, one
    notice says why, and the run trains on eagerly.

    measured: a trial's figures from earlier (a resumed run's run.json, or this machine's cache for
    this model, batch and precision): {"eager_ms", "compiled_ms", "compile_s"} per step, used
    instead of a new trial. After a trial, `measured` holds its figures and `reason` its verdict.
    images_to_train: the whole run's, every process's batches together (world_size processes)."""

    def __init__(self, module: torch.nn.Module, config: TrainConfig, precision: str, device: torch.device,
                 notice: Callable[[str], None], images_to_train: int, measured: dict | None = None,
                 timer: Callable[[], float] = time.perf_counter, world_size: int = 1):
        self.eager, self.batch_size, self.precision, self.device = module, config.batch_size, precision, device
        self.notice, self.timer = notice, timer
        compiled, self.reason = compile_plan(config.compile, device, images_to_train)
        # --compile asked for what cannot work here: said once when the run starts
        self.unavailable = f"torch.compile {self.reason}; training eagerly" if config.compile and not compiled else None
        self.measured = measured if measured_figures(measured) else None
        self.trial: dict | None = None  # the trial in progress: {"phase", "steps", "started", ...}
        if compiled and config.compile is None:  # auto: decide by timing
            steps_left = images_to_train // max(1, config.batch_size * world_size)  # this process's steps
            if self.measured is not None:
                compiled, self.reason = verdict(self.measured, steps_left)
            else:
                compiled, self.trial = False, {"phase": "warm-up", "steps": 0}
                self.reason = f"trial (auto: {images_to_train:,} images to train; eager and compiled steps are timed first)"
        self.compiled = torch.compile(module) if compiled else None
        self.proven = False  # a compiled step has gone through forward and backward

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
        if inputs[0].shape[0] != self.batch_size:
            return self._run(self.eager, inputs)
        if self.trial is not None:
            self._trial_mark()
        if self.compiled is None:
            return self._run(self.eager, inputs)
        if self.proven:
            return self._run(self.compiled, inputs)
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            loss = self._run(self.compiled, inputs)
        except Exception as error:  # the compiler's failure, whatever its type: fall back, never lose the run
            self.compiled, self.reason, self.trial = None, f"off: failed ({type(error).__name__})", None
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

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the trial's clock reads finished work
        return self.timer()

    def _trial_mark(self) -> None:
        """Before a full-batch step of the trial: move it on a phase where one ends (warm-up -> eager
        timing -> compile -> compiled timing -> verdict)."""
        trial = self.trial
        phase, done = trial["phase"], trial["steps"]
        trial["steps"] = done + 1
        if phase == "warm-up" and done == WARMUP_STEPS:
            trial.update(phase="eager", steps=1, started=self._now())
        elif phase == "eager" and done == TRIAL_STEPS:
            trial.update(phase="compile", steps=1, eager_ms=(self._now() - trial["started"]) * 1000 / TRIAL_STEPS,
                         started=self._now())
            self.compiled = torch.compile(self.eager)
        elif phase == "compile" and done == 1:  # the first compiled step is the compilation
            trial.update(phase="compiled", steps=1, compile_s=self._now() - trial["started"], started=self._now())
        elif phase == "compiled" and done == TRIAL_STEPS:
            self.measured = {"eager_ms": trial["eager_ms"], "compiled_ms": (self._now() - trial["started"]) * 1000 / TRIAL_STEPS,
                             "compile_s": trial["compile_s"]}
            self.trial = None
            keep, self.reason = verdict(self.measured, None)
            if not keep:
                self.compiled = None
            self.notice(f"torch.compile {self.reason}")


def measured_figures(measured: object) -> bool:
    """Whether `measured` holds a trial's three figures, each a positive finite number."""
    return isinstance(measured, dict) and all(
        isinstance(measured.get(k), (int, float)) and not isinstance(measured.get(k), bool)
        and math.isfinite(measured[k]) and measured[k] > 0 for k in ("eager_ms", "compiled_ms", "compile_s"))


def verdict(measured: dict, steps_left: int | None) -> tuple[bool, str]:
    """(compile or not, why) from a trial's figures. steps_left: where the compile is still to be
    paid (figures from earlier), it must be earned back over the steps left; None: a trial just
    paid it, so only the step times count."""
    eager, compiled, compile_s = measured["eager_ms"], measured["compiled_ms"], measured["compile_s"]
    figures = f"{compiled / 1000:.3g} s a step compiled, {eager / 1000:.3g} eager, compiling {compile_s:.0f} s"
    faster = compiled * KEEP_COMPILED_AT <= eager
    if not faster:
        return False, f"off (measured: {figures})"
    if steps_left is not None and (eager - compiled) / 1000 * steps_left < compile_s:
        return False, f"off (measured: {figures}; {steps_left:,} steps left do not earn the compile back)"
    return True, f"on (measured: {figures})"


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


def step_timer(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], device: torch.device) -> Callable[[str], None]:
    """A training step's forward and backward of `module` on a batch of its `inputs`, at a precision,
    for timing precisions against each other (core.autotune): the RNG and the gradients are put back
    as they were, so a run that times itself trains exactly as one that does not."""
    parameters = [p for p in module.parameters() if p.requires_grad]

    def run(precision: str) -> None:
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        with autocast(precision, device):
            loss = module(*inputs)
        loss.backward()
        for p in parameters:
            p.grad = None
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)

    return run


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
