"""Turn sampled tensors into PNG files that carry their full recipe."""

from __future__ import annotations

import base64
import datetime as _dt
from pathlib import Path

import torch

from ..classes import LEGACY_MIX, describe_class_weights, format_class_weights
from ..images import ExportError, make_grid, save_film, save_png, to_pil, to_uint8, unique_path
from .limits import DEFAULT_INIT_STRENGTH, DEFAULT_SWITCH_AT, STUDENT
from .request import SampleRequest

RECIPE_VERSION = 1


def recipe(request: SampleRequest, checkpoint_hash: str, checkpoint_path: str | None, index: int | None = None,
           guide: tuple[str | None, str] | None = None, student: tuple[str | None, str] | None = None) -> dict:
    """The PNG metadata: everything needed to regenerate the same pixels.

    The checkpoint (and, with autoguidance, the guide; with the student sampler, the student: each
    (file name, hash)) is named by its file name and hash only: a shared PNG must not tell strangers
    the exporter's directory layout, and the hash finds the model again (core.checkpoint.find_by_hash)."""
    data = {
        "fashion_tui_recipe": RECIPE_VERSION,
        "checkpoint_hash": checkpoint_hash,
        "checkpoint": Path(checkpoint_path).name if checkpoint_path else None,
        "class_weights": request.class_weights,
        "classes": format_class_weights(request.class_weights),
        "mix": request.mix,
        "guidance": request.guidance,
        "autoguidance": request.autoguidance,
        "guidance_interval": list(request.guidance_interval) if request.guidance_interval is not None else None,
        "black_level": request.black_level,
        "sampler": request.sampler,
        "steps": request.resolved_steps(),
        "seed": request.seed,
        "n": request.n,
        "shared_noise": request.shared_noise,
        "precision": request.precision,
        "variation_seed": request.variation_seed,
        "variation_strength": request.variation_strength,
        # the source picture itself (784 grey levels, base64): the PNG reproduces its pixels alone
        "init_image": base64.b64encode(request.init_image).decode("ascii") if request.init_image is not None else None,
        "init_strength": request.init_strength,
        "switch_to": request.switch_to,
        "switch_at": request.switch_at,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if request.switch_to is not None:
        data["switch_to_classes"] = format_class_weights(request.switch_to)
    for name, used, identity in (("guide", request.autoguidance, guide), ("student", request.sampler == STUDENT, student)):
        if used and identity is not None:
            data[name] = Path(identity[0]).name if identity[0] else None
            data[f"{name}_hash"] = identity[1]
    if request.per_item_weights is not None:
        data["per_item_weights"] = request.per_item_weights
    if index is not None:
        data["index"] = index
        data["item_seed"] = request.seed if request.shared_noise else request.seed + index
        if request.per_item_weights is not None:
            data["item_class_weights"] = request.per_item_weights[index]
    return data


def _recipe_interval(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"guidance_interval {value!r} is not two whole steps")
    return (value[0], value[1])


def _recipe_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {value!r} is not a whole number")
    return value


def _recipe_image(value) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"init_image {type(value).__name__} is not base64 text")
    return base64.b64decode(value, validate=True)  # binascii.Error is a ValueError


def _recipe_name(value, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} {value!r} is not a name")
    return value


def request_from_recipe(data: dict) -> tuple[SampleRequest, int | None]:
    """Inverse of recipe(): the request that reproduces the grid, and the item index if any."""
    if not isinstance(data, dict):
        raise ValueError(f"recipe is damaged: a {type(data).__name__}, not a JSON object")
    try:
        request = SampleRequest(
            class_weights=[float(w) for w in data["class_weights"]],
            n=int(data["n"]), guidance=float(data["guidance"]), sampler=str(data["sampler"]),
            steps=int(data["steps"]), seed=int(data["seed"]), shared_noise=bool(data.get("shared_noise", False)),
            per_item_weights=[[float(w) for w in row] for row in data["per_item_weights"]] if data.get("per_item_weights") else None,
            # recipes written before the interval existed guided every step
            guidance_interval=_recipe_interval(data.get("guidance_interval")),
            black_level=_recipe_int(data.get("black_level", 0), "black_level"),  # older recipes: raw output
            mix=_recipe_name(data.get("mix", LEGACY_MIX), "mix"),  # older recipes averaged the embeddings
            autoguidance=float(data.get("autoguidance", 0.0)),  # older recipes: CFG alone
            precision=_recipe_name(data.get("precision", "fp32"), "precision"),  # older recipes: fp32
            # older recipes: no variation, no source picture, no switch
            variation_seed=_recipe_int(data["variation_seed"], "variation_seed") if data.get("variation_seed") is not None else None,
            variation_strength=float(data.get("variation_strength", 0.0)),
            init_image=_recipe_image(data.get("init_image")),
            init_strength=float(data.get("init_strength", DEFAULT_INIT_STRENGTH)),
            switch_to=[float(w) for w in data["switch_to"]] if data.get("switch_to") is not None else None,
            switch_at=float(data.get("switch_at", DEFAULT_SWITCH_AT)),
        )
        index = data.get("index")
        index = int(index) if index is not None else None
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as error:  # OverflowError: int(inf), float(10**400)
        detail = " ".join(str(error).split())[:120]
        raise ValueError(f"recipe is incomplete or damaged ({type(error).__name__}: {detail})") from None
    request.validate()
    if index is not None and not 0 <= index < request.n:
        raise ValueError(f"recipe item index {index} is outside 0-{request.n - 1}")
    return request, index


def item_stem(request: SampleRequest, index: int) -> str:
    weights = request.per_item_weights[index] if request.per_item_weights else request.class_weights
    return f"{describe_class_weights(weights)}_seed{request.seed}_{index:02d}"


def grid_stem(request: SampleRequest) -> str:
    label = "blend-" + describe_class_weights(request.per_item_weights[0]) + "-to-" + describe_class_weights(request.per_item_weights[-1]) \
        if request.per_item_weights else describe_class_weights(request.class_weights)
    return f"grid_{label}_seed{request.seed}"


def check_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"cannot export to {directory}: it is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create export directory {directory}: {error.strerror or error}") from None
    probe = directory / ".fashion-tui-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ExportError(f"cannot write into {directory}: {error.strerror or error}") from None


def export_items(images: torch.Tensor, request: SampleRequest, directory: str | Path, checkpoint_hash: str,
                 checkpoint_path: str | None, palette: str = "grey", scale: int = 1, columns: int | None = None,
                 items: list[int] | None = None, grid: bool = True, guide: tuple[str | None, str] | None = None,
                 student: tuple[str | None, str] | None = None) -> list[Path]:
    """Write the chosen items (default all) and a grid; never overwrite. Returns the paths written.
    guide, student: the autoguidance guide's and the student's (file name, hash), each recorded when
    the request uses it."""
    directory = Path(directory)
    check_writable(directory)
    written = []
    grey = to_uint8(images[:, 0])
    for index in (items if items is not None else range(images.shape[0])):
        path = unique_path(directory, item_stem(request, index))
        meta = recipe(request, checkpoint_hash, checkpoint_path, index, guide, student) | {"palette": palette, "scale": scale}
        written.append(save_png(to_pil(grey[index], palette, scale), path, meta))
    if grid:
        columns = columns or min(8, images.shape[0])
        path = unique_path(directory, grid_stem(request))
        meta = recipe(request, checkpoint_hash, checkpoint_path, guide=guide, student=student) | {"palette": palette, "scale": scale,
                                                                                                "columns": columns}
        written.append(save_png(to_pil(make_grid(images, columns), palette, scale), path, meta))
    return written


def export_film(frames: list, request: SampleRequest, index: int, directory: str | Path, checkpoint_hash: str,
                checkpoint_path: str | None, palette: str = "grey", scale: int = 4, kind: str = "png",
                guide: tuple[str | None, str] | None = None, student: tuple[str | None, str] | None = None) -> Path:
    """Item `index`'s denoising film (core.sampling.steering.film_frame's frames) as film_<item>.png,
    an animated PNG carrying the item's recipe, or film_<item>.gif; never overwrites."""
    directory = Path(directory)
    check_writable(directory)
    path = unique_path(directory, "film_" + item_stem(request, index), "." + kind)
    meta = recipe(request, checkpoint_hash, checkpoint_path, index, guide, student) | {"palette": palette, "scale": scale, "film": True}
    return save_film(frames, path, palette, scale, meta)
