"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models" (EDM2), section 3 and appendix C): choose the EMA length after training.

A power-function EMA profile with exponent gamma averages the weights theta(t) of steps 1..T with
the density p(t) = (gamma + 1) t^gamma / T^(gamma + 1) on [0, T]: recent steps count most, and the
average's relative width (its standard deviation over T) is

    sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))

so sigma_rel 0.05 is gamma 16.97 and 0.10 is gamma 6.94. Unlike a classic EMA it has no fixed
decay: its length grows with the run, and the profile is exact from the first step.

During training (TrainConfig.posthoc_ema, `--posthoc-ema 0.05,0.10`) a PosthocEMA keeps one copy
of the model per profile, updated after each optimizer step; every training checkpoint carries the
copies and writes a snapshot of them beside it (run_dir/posthoc/step-XXXXXXX.pt, all kept). After
training, reconstruct() finds the least-squares combination of all (snapshot, profile) pairs whose
averaging density is closest to that of any sigma_rel in range, at a snapshot's step, and returns
the combined weights; `python -m core.training.export` writes them as a sampling checkpoint.

A snapshot file: {"kind": "fashion-posthoc-ema", "format_version": 1, "step", "sigma_rels",
"gammas", "model_config", "diffusion_config", "train_config", "preset", "profiles": [state_dict,
... one per sigma_rel, fp32 on the CPU]}. Time is counted in optimizer steps, so a run resumed
with another global batch keeps its profiles' clock in steps, not images.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..checkpoint import CheckpointError, atomic_save, read_checkpoint
from .rundir import POSTHOC, list_snapshots, snapshot_name, step_of
from .step import update_ema

SNAPSHOT_KIND = "fashion-posthoc-ema"
SNAPSHOT_FORMAT_VERSION = 1
# gamma = 0 (a plain average of every step so far) has sigma_rel 12^-1/2 = 0.2887; a longer profile
# needs gamma < 0, which weights the first steps most: refused, like EDM2's range.
MAX_SIGMA_REL = 12 ** -0.5


# ----------------------------------------------------------------------------- sigma_rel and gamma
def check_sigma_rel(sigma_rel: float) -> float:
    """sigma_rel as a float, or ValueError (one line) when it is not in (0, MAX_SIGMA_REL)."""
    value = float(sigma_rel)
    if not 0 < value < MAX_SIGMA_REL:  # also refuses nan and inf
        raise ValueError(f"sigma_rel must be above 0 and below {MAX_SIGMA_REL:.4f} (where gamma reaches 0), not {sigma_rel!r}")
    return value


def check_sigma_rels(sigma_rels) -> tuple[float, ...]:
    """Profiles to track: each in range, none twice; ValueError (one line) otherwise."""
    values = tuple(check_sigma_rel(s) for s in sigma_rels)
    if len(set(values)) != len(values):
        raise ValueError(f"post-hoc EMA sigma_rels must differ, not {', '.join(map(str, values))}")
    return values


def parse_sigma_rels(text: str) -> tuple[float, ...]:
    """`0.05,0.10` -> (0.05, 0.1), or ValueError (one line) naming what is wrong."""
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"{part.strip()!r} in {text!r} is not a number (expected SIGMA[,SIGMA...], e.g. 0.05,0.10)") from None
    return check_sigma_rels(values)


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent gamma of the profile of relative width sigma_rel: the largest real root of
    gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2), i.e. of (gamma+2)^2 (gamma+3) = s^-2 (gamma+1).

    In range, that cubic is negative at gamma = 0 and, right of 0, has its only root there (sigma_rel
    falls as gamma grows past 0), so bisection between 0 and a bound on the roots finds it to the
    last bit of a double."""
    u = check_sigma_rel(sigma_rel) ** -2

    def cubic(gamma: float) -> float:
        return ((gamma + 7) * gamma + 16 - u) * gamma + 12 - u

    low, high = 0.0, 1.0 + max(7.0, abs(16 - u), abs(12 - u))  # Cauchy's bound: every root is below it
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        low, high = (middle, high) if cubic(middle) < 0 else (low, middle)
    return 0.5 * (low + high)


def gamma_to_sigma_rel(gamma: float) -> float:
    """The relative width of the profile t^gamma: sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def power_beta(gamma: float, t: int) -> float:
    """The decay of step t (the step count after the update, from 1): (1 - 1/t)^(gamma + 1).

    Step 1 copies the weights (beta 0); after T steps the weights of step k carry
    (k^(gamma+1) - (k-1)^(gamma+1)) / T^(gamma+1), which is p(t) integrated over (k-1, k]."""
    return (1.0 - 1.0 / t) ** (gamma + 1.0)


# ----------------------------------------------------------------------------- tracking during training
class PosthocEMA:
    """One EMA copy of the model per sigma_rel, updated after each optimizer step. With no
    sigma_rels it holds nothing and every method does nothing, so a run without post-hoc EMA
    computes and writes exactly what it did before."""

    def __init__(self, model: torch.nn.Module, sigma_rels=()):
        self.sigma_rels = check_sigma_rels(sigma_rels)
        self.gammas = tuple(sigma_rel_to_gamma(s) for s in self.sigma_rels)
        self.profiles = [copy.deepcopy(model).eval().requires_grad_(False) for _ in self.sigma_rels]

    @property
    def tracking(self) -> bool:
        return bool(self.sigma_rels)

    def update(self, model: torch.nn.Module, step: int) -> None:
        """Fold the model's weights after optimizer step `step` (1 for the first) into each profile."""
        for gamma, profile in zip(self.gammas, self.profiles):
            update_ema(profile, model, power_beta(gamma, step))

    def state(self) -> dict:
        """What a training checkpoint stores under "posthoc_ema": the sigma_rels and each profile's weights."""
        return {"sigma_rels": list(self.sigma_rels), "profiles": [ckpt.model_state(p) for p in self.profiles]}

    def load_state(self, state: dict) -> None:
        """A checkpoint's "posthoc_ema" into these profiles; ValueError (one line) if it does not fit."""
        saved = tuple(float(s) for s in state.get("sigma_rels", ()))
        if saved != self.sigma_rels:
            raise ValueError(f"the checkpoint tracks sigma_rels {list(saved)}, this run {list(self.sigma_rels)}")
        profiles = state.get("profiles", [])
        if len(profiles) != len(self.profiles):
            raise ValueError(f"the checkpoint holds {len(profiles)} post-hoc EMA profiles for {len(saved)} sigma_rels")
        for profile, weights in zip(self.profiles, profiles):
            profile.load_state_dict(weights)

    def forget_after(self, run_dir: Path, step: int) -> list[Path]:
        """Delete the run's snapshots newer than `step` (a run restarting there): they describe
        steps that will be trained again. Nothing when not tracking."""
        return remove_snapshots_after(run_dir, step) if self.tracking else []


def check_tracked(state: dict, path: Path | str) -> None:
    """CheckpointError (one line) unless a checkpoint's "posthoc_ema" is sigma_rels in range with
    one profile each, of exactly its model's shapes (checked before anything is built)."""
    tracked = state["posthoc_ema"]
    try:
        sigma_rels, profiles = check_sigma_rels(tracked["sigma_rels"]), tracked["profiles"]
        if not isinstance(profiles, list) or len(profiles) != len(sigma_rels):
            raise ValueError(f"{len(sigma_rels)} sigma_rels but {type(profiles).__name__} of profiles")
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is not a usable checkpoint: its post-hoc EMA is malformed ({error})") from None
    for weights in profiles:
        ckpt.check_weights({**state, "posthoc_profile": weights}, "posthoc_profile", path)


# ----------------------------------------------------------------------------- snapshot files
def snapshot_of(checkpoint: dict) -> dict:
    """The snapshot written beside a training checkpoint that holds "posthoc_ema": its step, the
    profiles' sigma_rels, gammas and fp32 weights on the CPU, and the configs that rebuild the model."""
    tracked = checkpoint["posthoc_ema"]
    return {
        "kind": SNAPSHOT_KIND,
        "format_version": SNAPSHOT_FORMAT_VERSION,
        "step": int(checkpoint["step"]),
        "sigma_rels": list(tracked["sigma_rels"]),
        "gammas": [sigma_rel_to_gamma(s) for s in tracked["sigma_rels"]],
        # the checkpoint's configs, as core.checkpoint.config_dicts wrote them, and how it was trained
        **{key: checkpoint.get(key) for key in ("model_config", "diffusion_config", "train_config", "preset")},
        "profiles": [{k: v.detach().float().cpu() for k, v in weights.items()} for weights in tracked["profiles"]],
    }


def write_snapshot(run_dir: str | os.PathLike, snapshot: dict) -> Path:
    """run_dir/posthoc/step-XXXXXXX.pt, written atomically (OSError when it cannot be)."""
    path = Path(run_dir) / POSTHOC / snapshot_name(snapshot["step"])
    atomic_save(snapshot, path)
    return path


def remove_snapshots_after(run_dir: str | os.PathLike, step: int) -> list[Path]:
    """Delete the snapshots of steps after `step`; the deleted paths."""
    gone = [path for path in list_snapshots(run_dir) if step_of(path) > step]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def read_snapshot(path: str | os.PathLike) -> dict:
    """A snapshot file, checked: right kind and version, its step that of its name, sigma_rels in
    range with one profile each of exactly its model's shapes; CheckpointError (one line) otherwise."""
    path = Path(path)
    data = read_checkpoint(path, kind=SNAPSHOT_KIND, format_version=SNAPSHOT_FORMAT_VERSION)
    step = data.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1 or step != step_of(path):
        raise CheckpointError(f"{path} is not a usable checkpoint: its step {step!r} does not match its name")
    check_tracked({**data, "posthoc_ema": {"sigma_rels": data.get("sigma_rels"), "profiles": data.get("profiles")}}, path)
    return data


# ----------------------------------------------------------------------------- reconstruction after training
def profile_dot(t_a: torch.Tensor, gamma_a: torch.Tensor, t_b: torch.Tensor, gamma_b: torch.Tensor) -> torch.Tensor:
    """The inner product of two profile densities, integral of p_a(t) p_b(t) dt, broadcast (EDM2's p_dot_p).

    With p(t) = (gamma + 1) t^gamma / T^(gamma + 1) on [0, T], the product lives on [0, min(T_a, T_b)]:
    (gamma_a+1)(gamma_b+1) min^(gamma_a+gamma_b+1) / ((gamma_a+gamma_b+1) T_a^(gamma_a+1) T_b^(gamma_b+1)),
    which is written below as a ratio of times to a power, so large gammas never overflow."""
    t_ratio = t_a / t_b
    t_exp = torch.where(t_a < t_b, gamma_b, -gamma_a)
    t_max = torch.maximum(t_a, t_b)
    return (gamma_a + 1) * (gamma_b + 1) * t_ratio ** t_exp / ((gamma_a + gamma_b + 1) * t_max)


def solve_coefficients(steps, gammas, target_step: float, target_gamma: float) -> torch.Tensor:
    """(n,) float64: the weights of the n stored profiles (step T_i, exponent gamma_i) whose
    combination's density is nearest, in least squares, to the target profile's, scaled to sum
    to 1 (EDM2's solve_posthoc_coefficients): A x = b with A the stored profiles' Gram matrix."""
    t = torch.as_tensor(steps, dtype=torch.float64)  # (n,)
    g = torch.as_tensor(gammas, dtype=torch.float64)  # (n,)
    a = profile_dot(t[:, None], g[:, None], t[None, :], g[None, :])  # (n, n)
    b = profile_dot(t, g, torch.tensor(float(target_step), dtype=torch.float64),
                    torch.tensor(float(target_gamma), dtype=torch.float64))  # (n,)
    try:
        x = torch.linalg.solve(a, b)
    except RuntimeError:  # torch.linalg.LinAlgError: two stored profiles are the same function
        raise ValueError("the stored post-hoc EMA profiles are linearly dependent; cannot solve") from None
    return x / x.sum()


@dataclass
class Reconstruction:
    weights: dict  # the model's state dict, fp32 on the CPU
    step: int  # the snapshot step the EMA is reconstructed at
    sigma_rel: float
    header: dict  # the newest snapshot's model_config, diffusion_config, train_config, preset
    sources: int  # (snapshot, profile) pairs combined


def reconstruct(run_dir: str | os.PathLike, sigma_rel: float, step: int | None = None) -> Reconstruction:
    """The EMA of relative width sigma_rel at the newest snapshot at or before `step` (None: the
    newest), from every (snapshot, profile) pair up to there. ValueError or CheckpointError (one
    line) for a sigma_rel out of range, a run without snapshots, a step before the first one, a
    corrupt snapshot or snapshots of different models."""
    target_gamma = sigma_rel_to_gamma(sigma_rel)
    folder = Path(run_dir) / POSTHOC
    paths = list_snapshots(run_dir)
    if not paths:
        raise ValueError(f"no post-hoc EMA snapshots in {folder}: train with --posthoc-ema SIGMA[,SIGMA...] to write them")
    if step is not None:
        first = step_of(paths[0])
        paths = [path for path in paths if step_of(path) <= step]
        if not paths:
            raise ValueError(f"no post-hoc EMA snapshot at or before step {step} in {folder} (the first is at step {first})")
    snapshots = [read_snapshot(path) for path in paths]
    newest = snapshots[-1]
    for path, snapshot in zip(paths, snapshots):
        if (snapshot["model_config"], snapshot["diffusion_config"]) != (newest["model_config"], newest["diffusion_config"]):
            raise ValueError(f"{path} holds another model than {paths[-1].name}: post-hoc EMA combines the snapshots of one run")
    pairs = [(snapshot["step"], sigma_rel_to_gamma(s), weights)
             for snapshot in snapshots for s, weights in zip(snapshot["sigma_rels"], snapshot["profiles"])]
    coefficients = solve_coefficients([p[0] for p in pairs], [p[1] for p in pairs], newest["step"], target_gamma)
    weights = {}
    for key, reference in newest["profiles"][0].items():
        if not reference.is_floating_point():
            weights[key] = reference.clone()
            continue
        total = torch.zeros(reference.shape, dtype=torch.float64)
        for coefficient, (_, _, profile) in zip(coefficients.tolist(), pairs):
            total += coefficient * profile[key].double()
        weights[key] = total.float()
    header = {k: newest.get(k) for k in ("model_config", "diffusion_config", "train_config", "preset")}
    return Reconstruction(weights, newest["step"], float(sigma_rel), header, len(pairs))
