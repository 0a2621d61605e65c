"""Checkpoint files: plain dicts of tensors and numbers, written atomically, read without running code.

    {"kind": "fashion-diffusion", "format_version": 1,
     "model_config": {...}, "diffusion_config": {...}, "train_config": {...} | None,
     "ema": state_dict,                # weights used for sampling
     "model", "optimizer", "step", "epoch", "rng", "wall_time_sec", ...   # training checkpoints only
    }

Loading uses torch.load(weights_only=True): a pickle that would execute code is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .model.config import DiffusionConfig, ModelConfig, as_dict, from_dict
from .files import atomic_write_bytes
from .model.denoiser import Denoiser

KIND = "fashion-diffusion"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable checkpoint; the message is one line and names the file. `reason`
    is the part after the file's name, for callers that name the file their own way."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def atomic_save(obj: dict, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def read_checkpoint(path: str | os.PathLike, kind: str = KIND, format_version: int = FORMAT_VERSION) -> dict:
    """torch.load(weights_only=True) with one-line errors for every way a file can be wrong: the one
    reader of generator, training and classifier files (`kind` says which is wanted)."""
    path = Path(path)

    def refuse(reason: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a usable checkpoint: {reason}", reason)

    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist", "no such file")
    if path.is_dir():
        raise refuse("it is a directory")
    try:
        empty = path.stat().st_size == 0
    except OSError as error:
        raise refuse(f"cannot read it ({error.strerror or error})") from None
    if empty:
        raise refuse("the file is empty")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol" chatter for foreign pickles: the reason below says it
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        # weights_only refuses pickles that would import or call code; never retry without it
        message = str(error)
        if "weights_only" in message or "Unsupported global" in message or "GLOBAL" in message:
            raise refuse("it needs code to load (refused for safety: only plain tensor dicts are accepted)") from None
        raise refuse("the file is corrupt or truncated, or not a PyTorch checkpoint") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise refuse("it is not a fashion-tui checkpoint")
    if data["kind"] != kind:
        raise refuse(f"it holds a {data['kind']!r}, expected a {kind!r}")
    if data.get("format_version") != format_version:
        raise refuse(f"format version {data.get('format_version')!r}, expected {format_version}")
    return data


def file_hash(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass
class Generator:
    """A denoiser ready to sample, with the configs and file it came from."""

    denoiser: Denoiser
    model_config: ModelConfig
    diffusion_config: DiffusionConfig
    path: Path | None
    hash: str
    info: dict  # step, epoch, wall time, notes
    guide: "Generator | None" = None  # autoguidance's weaker model, when one is loaded beside this one
    student: "Generator | None" = None  # a few-step student distilled from this model, when one is loaded beside it

    def guide_identity(self) -> tuple[str | None, str] | None:
        """(file name, hash) of the guide, as a recipe records it; None without one."""
        return self.guide.identity() if self.guide is not None else None

    def student_identity(self) -> tuple[str | None, str] | None:
        """(file name, hash) of the student, as a recipe records it; None without one."""
        return self.student.identity() if self.student is not None else None

    def identity(self) -> tuple[str | None, str]:
        """(file name, hash): how a recipe names a model without the exporter's folders."""
        return (self.path.name if self.path else None, self.hash)


# A checkpoint may come from anyone. Its configs must lie within these bounds, and its weights must have
# exactly the shapes of the model its configs describe (checked on a memory-free "meta" model) before a
# real model is allocated: a small file must not make us build a huge network.
SIZE_LIMITS = {"unshuffle": 28, "levels": 6, "channels": 4096, "blocks_per_level": 16, "time_dim": 4096,
               "class_dim": 4096, "groups": 4096, "steps": 100_000}


def _check_sizes(model_config: ModelConfig, diffusion_config: DiffusionConfig) -> None:
    values = {"unshuffle": [model_config.unshuffle], "levels": [len(model_config.channels)],
              "channels": list(model_config.channels), "blocks_per_level": [model_config.blocks_per_level],
              "time_dim": [model_config.time_dim], "class_dim": [model_config.class_dim],
              "groups": [model_config.groups], "steps": [diffusion_config.steps]}
    if not isinstance(model_config.guidance_input, bool):
        raise ValueError(f"config guidance_input {model_config.guidance_input!r} must be true or false")
    levels = model_config.attention_levels
    if not isinstance(levels, tuple) or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(model_config.channels)
                                            for v in levels):
        raise ValueError(f"config attention_levels {levels!r} must name levels 0-{len(model_config.channels) - 1}")
    for name, found in values.items():
        low = 2 if name == "steps" else 1
        for value in found:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= SIZE_LIMITS[name]:
                raise ValueError(f"config {name} {value!r} is outside {low}-{SIZE_LIMITS[name]}")


def _check_shapes(state, model_config: ModelConfig, diffusion_config: DiffusionConfig) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"weights are a {type(state).__name__}, not a dict of tensors")
    with torch.device("meta"):
        expected = Denoiser(model_config, diffusion_config).state_dict()
    for key, reference in expected.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{key} is missing" if value is None else f"{key} is a {type(value).__name__}, not a tensor")
        if value.shape != reference.shape:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, the model needs {tuple(reference.shape)}")
    unexpected = [str(key) for key in state if key not in expected]
    if unexpected:
        raise ValueError(f"{len(unexpected)} unexpected tensors (first: {unexpected[0][:60]})")


def check_weights(data: dict, weights_key: str, path: Path | str = "<memory>") -> tuple[ModelConfig, DiffusionConfig]:
    """The file's configs, once its configs are in bounds and data[weights_key] has exactly their model's shapes.

    Allocates nothing of the model; CheckpointError (one line) otherwise. The trainer's --resume can call
    this on a candidate file before building anything from it.
    """
    try:
        model_config = from_dict(ModelConfig, data["model_config"])
        diffusion_config = from_dict(DiffusionConfig, data["diffusion_config"])
        try:
            _check_sizes(model_config, diffusion_config)
        except ValueError as error:
            raise CheckpointError(f"{path} is not a usable checkpoint: its model is out of range ({error})") from None
        _check_shapes(data[weights_key], model_config, diffusion_config)
    except CheckpointError:
        raise
    except Exception as error:
        raise _misfit(path, error) from None
    return model_config, diffusion_config


def _misfit(path: Path | str, error: Exception) -> CheckpointError:
    text = " ".join(str(error).split())
    first = f"missing {text}" if isinstance(error, KeyError) else text[:160] if text else type(error).__name__
    return CheckpointError(f"{path} is not a usable checkpoint: its weights do not fit its model ({first})")


def build_denoiser(data: dict, weights_key: str, path: Path | str = "<memory>") -> tuple[Denoiser, ModelConfig, DiffusionConfig]:
    model_config, diffusion_config = check_weights(data, weights_key, path)
    try:
        denoiser = Denoiser(model_config, diffusion_config)
        state = data[weights_key]
        denoiser.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except Exception as error:
        raise _misfit(path, error) from None
    return denoiser, model_config, diffusion_config


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    path = Path(path)
    data = read_checkpoint(path)
    if "ema" not in data:
        raise CheckpointError(f"{path} is not a usable checkpoint: it has no EMA weights")
    denoiser, model_config, diffusion_config = build_denoiser(data, "ema", path)
    # channels_last lets oneDNN/cuDNN pick NHWC kernels, much faster for these small convolutions
    denoiser.to(device).to(memory_format=torch.channels_last).eval()
    info = {k: data.get(k) for k in ("step", "epoch", "wall_time_sec", "note", "preset") if k in data}
    return Generator(denoiser, model_config, diffusion_config, path, file_hash(path), info)


def export_generator(source: dict, path: str | os.PathLike, half: bool = True) -> None:
    """Write only what sampling needs (configs + EMA weights), optionally as 16-bit floats; a
    reconstructed post-hoc EMA (core.training.export) keeps its posthoc_sigma_rel, a student its
    distillation record (its teacher)."""
    ema = {k: (v.half() if half and v.is_floating_point() else v) for k, v in source["ema"].items()}
    keep = {k: source[k] for k in ("model_config", "diffusion_config", "train_config", "step", "epoch", "wall_time_sec", "preset",
                                   "posthoc_sigma_rel", "distill") if k in source}
    atomic_save({"kind": KIND, "format_version": FORMAT_VERSION, **keep, "ema": ema}, path)


def package_checkpoint_dir() -> Path:
    """checkpoints/ next to the installed packages (shipped as package data) or in the source tree."""
    try:
        import checkpoints  # the folder is a package so a regular install carries the model

        return Path(checkpoints.__file__).resolve().parent
    except ImportError:
        return Path(__file__).resolve().parent.parent / "checkpoints"


DEFAULT_MODEL_NAME = "fashion-default.pt"


def default_checkpoint() -> Path:
    return package_checkpoint_dir() / DEFAULT_MODEL_NAME


# The models that live beside a generator: fashion-default.pt -> fashion-default-guide.pt (autoguidance's
# guide), fashion-default-student.pt (a few-step student distilled from it, core.training.distill).
GUIDE_SUFFIX = "-guide"
STUDENT_SUFFIX = "-student"


def guide_path_for(path: str | os.PathLike) -> Path:
    return beside(path, GUIDE_SUFFIX)


def student_path_for(path: str | os.PathLike) -> Path:
    return beside(path, STUDENT_SUFFIX)


def beside(path: str | os.PathLike, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}{suffix}{path.suffix}")


def open_generator(path: str | os.PathLike | None, device: str | torch.device = "cpu", guide: str | os.PathLike | None = None,
                   missing_hint: str = "pass --checkpoint PATH", student: str | os.PathLike | None = None) -> Generator:
    """The generator at `path` (None: the shipped model) with its autoguidance guide and its student
    attached: `guide` and `student` if given, else the files beside it (guide_path_for,
    student_path_for) where there are. The one loader of the app and the command line;
    CheckpointError (one line) names the file that failed."""
    target = Path(path) if path else default_checkpoint()
    if path is None and not target.exists():
        raise CheckpointError(f"no shipped model at {target}; {missing_hint}")
    generator = load_generator(target, device)
    for given, place, load, name in ((guide, guide_path_for(target), load_guide, "guide"),
                                     (student, student_path_for(target), load_student, "student")):
        file = Path(given) if given else place
        if given or file.is_file():
            setattr(generator, name, load(file, generator, device))
    return generator


def load_guide(path: str | os.PathLike, generator: Generator, device: str | torch.device = "cpu") -> Generator:
    """A generator checkpoint to guide `generator` with: it must predict the same target over the
    same schedule, so that the two predictions can be subtracted."""
    guide = load_generator(path, device)
    mine, theirs = generator.diffusion_config, guide.diffusion_config
    if (theirs.prediction, theirs.steps) != (mine.prediction, mine.steps):
        raise CheckpointError(f"{path} cannot guide this model: it predicts {theirs.prediction} over {theirs.steps} steps, "
                              f"the model {mine.prediction} over {mine.steps}")
    return guide


def load_student(path: str | os.PathLike, generator: Generator, device: str | torch.device = "cpu") -> Generator:
    """A student checkpoint for `generator`'s "student" sampler: a model that takes the guidance as an
    input (ModelConfig.guidance_input), over the same schedule as the generator it stands in for."""
    student = load_generator(path, device)
    if not student.model_config.guidance_input:
        raise CheckpointError(f"{path} is not a student: it takes no guidance input (fashion-train distill makes one)")
    if student.diffusion_config.steps != generator.diffusion_config.steps:
        raise CheckpointError(f"{path} cannot stand in for this model: it denoises over {student.diffusion_config.steps} "
                              f"steps, the model over {generator.diffusion_config.steps}")
    return student


def find_by_hash(wanted: str, name: str | None, places: list[Path]) -> Path | None:
    """The first checkpoint file in `places` (files, or folders searched one level deep) whose
    file_hash is `wanted`; files called `name` are tried first. None if there is none."""
    candidates: list[Path] = []
    for place in places:
        place = Path(place)
        if place.is_file():
            candidates.append(place)
        elif place.is_dir():
            files = sorted(place.glob("*.pt"))
            candidates += [f for f in files if f.name == name] + [f for f in files if f.name != name]
    seen = set()
    for candidate in candidates:
        key = candidate.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            if file_hash(candidate) == wanted:
                return candidate
        except OSError:
            continue
    return None


def model_search_places(extra: list[Path] = ()) -> list[Path]:
    """Where a recipe's model is looked for: the given places, the shipped models, the working
    directory, ./checkpoints and the checkpoint folders of ./runs/*."""
    cwd = Path.cwd()
    runs = sorted(cwd.glob("runs/*/checkpoints"))
    return [*extra, package_checkpoint_dir(), cwd, cwd / "checkpoints", *runs]


def model_state(denoiser: Denoiser) -> dict:
    return {k: v.detach().clone() for k, v in denoiser.state_dict().items()}


def config_dicts(model_config: ModelConfig, diffusion_config: DiffusionConfig) -> dict:
    return {"model_config": as_dict(model_config), "diffusion_config": as_dict(diffusion_config)}
