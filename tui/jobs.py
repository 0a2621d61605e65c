"""The work behind the workers: the tui module whose top level imports torch (through core).

Import it, and any core module that needs torch, inside worker functions only, never at module
level of a screen or the app: `import torch` alone takes seconds, and the first frame must not wait for it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import torch

from core import checkpoint
from core.checkpoint import Generator, find_by_hash, model_search_places
from core.sampling.recipes import export_film, export_items, request_from_recipe
from core.images import PALETTES, palette_lut, read_metadata, to_uint8
from core.sampling.request import SampleRequest, blend_weights
from core.sampling.samplers import SampleStep, sample_steps
from core.sampling.steering import film_frame, final_frame

# One sampler at a time: a cancelled run still finishing its step must not compete for the
# CPU with the next one (guidance itself is per call in core.sampling.samplers).
SAMPLING_LOCK = threading.Lock()


def palette_tables() -> dict[str, list[tuple[int, int, int]]]:
    return {name: [tuple(rgb) for rgb in palette_lut(name).tolist()] for name in PALETTES}


def lower_thread_priority(step: int = 5) -> None:
    """Make the calling worker thread nicer than the UI thread (Linux: nice is per thread), so a
    key press wins the CPU when both want it: for training in the app, whose steps run for minutes.
    Best effort; other systems keep the priority."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + step))
    except OSError:
        pass


def open_generator(path: str | None, device: str, precision: str = "auto") -> tuple[Generator, str, str]:
    """The generator, the precision ("bf16" or "fp32") that `precision` means for the app's requests
    on its device (timed there where it must be: core.sampling.samplers.sampling_precision), and why.
    The model's kernels are warmed at the app's batch shapes, so the first g is as fast as the next."""
    from core.device import pick_device
    from core.sampling.limits import DEFAULT_ITEMS
    from core.sampling.samplers import sampling_precision

    torch_device = pick_device(device)
    generator = checkpoint.open_generator(path, torch_device,
                                          missing_hint="start with --checkpoint PATH, or train one in the monitor (m, then t)")
    resolved, why = sampling_precision(generator, precision, torch_device)
    warm_up(generator, resolved, DEFAULT_ITEMS)
    return generator, resolved, why


def warm_up(generator: Generator, precision: str, items: int) -> None:
    """One unguided and one guided call at `precision`: the first call of a batch shape builds its
    kernels (tens of milliseconds each), which would otherwise land on the first generation."""
    from core.sampling.samplers import default_call

    device = next(generator.denoiser.parameters()).device
    for guided in (False, True):
        default_call(generator, device, items, guided)(precision)


def build_request(fields: dict, blend: tuple[int, int] | None = None) -> SampleRequest:
    """A validated request from the controls' fields; a blend strip shares one seed across items."""
    request = SampleRequest(**fields)
    if blend is not None:
        request.per_item_weights = blend_weights(blend[0], blend[1], request.n)
        request.class_weights = request.per_item_weights[0]
        request.shared_noise = True
    return request.validate()


def grey_bytes(x: torch.Tensor) -> bytes:
    """(n,1,28,28) in about [-1, 1] -> n*28*28 grey levels."""
    return to_uint8(x[:, 0]).contiguous().numpy().tobytes()


def steps(generator: Generator, request: SampleRequest, cancelled=lambda: False, film: bool = False) -> Iterator[SampleStep]:
    """sample_steps, holding SAMPLING_LOCK from the first step until the iterator is closed. A run
    cancelled while it waited for the lock (live mode queues one per key) stops before its first step."""
    with SAMPLING_LOCK:
        if cancelled():
            return
        yield from sample_steps(generator, request, film=film)


def film(generator: Generator, request: SampleRequest, index: int, cancelled=lambda: False) -> list[tuple[str, bytes, bytes]] | None:
    """Item `index`'s denoising film, the request run again recording it: (label, x_t, predicted x_0)
    frames as grey bytes, the finished item last; None if cancelled."""
    frames, last = [], None
    run = steps(generator, request, cancelled, film=True)
    try:
        for last in run:
            if cancelled():
                return None
            frames.append(film_frame(last, index))
    finally:
        run.close()
    if last is None:
        return None
    frames.append(final_frame(last, index))
    return [(label, x_t.numpy().tobytes(), x0.numpy().tobytes()) for label, x_t, x0 in frames]


def export_item_film(frames: list[tuple[str, bytes, bytes]], request: SampleRequest, index: int, directory: str,
                     generator: Generator, palette: str, scale: int) -> Path:
    def grey(pixels: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(28, 28)

    return export_film([(label, grey(x_t), grey(x0)) for label, x_t, x0 in frames], request, index, directory,
                       generator.hash, str(generator.path) if generator.path else None, palette, scale,
                       guide=generator.guide_identity(), student=generator.student_identity())


def export(images: torch.Tensor, request: SampleRequest, directory: str, generator: Generator,
           palette: str, scale: int, columns: int, selected: int | None) -> list[Path]:
    return export_items(images, request, directory, generator.hash, str(generator.path) if generator.path else None,
                        palette, scale, columns, items=[selected] if selected is not None else [], grid=True,
                        guide=generator.guide_identity(), student=generator.student_identity())


def read_recipe(path: str) -> tuple[SampleRequest, int | None, dict]:
    data = read_metadata(path)
    if "fashion_tui_recipe" not in data:
        raise ValueError(f"{path} holds no generation recipe (a training sample grid?)")
    request, index = request_from_recipe(data)
    return request, index, data


def locate_recipe_model(recipe: dict, png: str, current: Generator | None, model_folders: list[Path] = ()) -> Path | None:
    """The checkpoint a recipe was made with, found by its hash: the model in use, a path an older
    recipe stored, the PNG's folder, the model's folder (`model_folders` while one loads), then
    core's usual places."""
    wanted = recipe.get("checkpoint_hash")
    if not isinstance(wanted, str):
        return None
    if current is not None and current.hash == wanted:
        return current.path
    stored = recipe.get("checkpoint")
    name = Path(stored).name if isinstance(stored, str) and stored else None
    places = [Path(stored)] if isinstance(stored, str) and Path(stored).is_absolute() else []
    places.append(Path(png).parent)
    if current is not None and current.path is not None:
        places.append(current.path.parent)
    places += model_folders
    return find_by_hash(wanted, name, model_search_places(places))


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
