"""From tensors to pixels: palettes, grids, and PNGs that carry their recipe as text metadata."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin

from .files import atomic_write_bytes

# Palettes map grey level 0..1 (item brightness) to RGB. "grey" keeps the dataset's look.
PALETTE_STOPS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "grey": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "inverted": [(0.0, (255, 255, 255)), (1.0, (0, 0, 0))],
    "magma": [(0.0, (0, 0, 4)), (0.25, (81, 18, 124)), (0.5, (183, 55, 121)), (0.75, (252, 137, 97)), (1.0, (252, 253, 191))],
    "viridis": [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)), (1.0, (253, 231, 37))],
    "ice": [(0.0, (4, 8, 24)), (0.5, (40, 110, 190)), (1.0, (230, 250, 255))],
}
PALETTES = tuple(PALETTE_STOPS)
METADATA_KEY = "fashion-tui"  # PNG tEXt key holding the JSON recipe
MAX_SCALE = 64


class ExportError(OSError):
    """An image could not be written; one line naming the path."""


def palette_lut(name: str) -> torch.Tensor:
    """(256, 3) uint8 lookup table for a palette."""
    if name not in PALETTE_STOPS:
        raise ValueError(f"unknown palette {name!r}; choose from {', '.join(PALETTES)}")
    stops = PALETTE_STOPS[name]
    levels = torch.linspace(0, 1, 256)
    lut = torch.zeros(256, 3)
    for (p0, c0), (p1, c1) in zip(stops[:-1], stops[1:]):
        mask = (levels >= p0) & (levels <= p1)
        w = ((levels[mask] - p0) / (p1 - p0))[:, None]
        lut[mask] = torch.tensor(c0, dtype=torch.float32) * (1 - w) + torch.tensor(c1, dtype=torch.float32) * w
    return lut.round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(..., 28, 28) in [-1, 1] -> uint8 grey levels 0..255 (same rounding everywhere)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def colourise(grey: torch.Tensor, palette: str = "grey") -> torch.Tensor:
    """uint8 (H, W) -> uint8 (H, W, 3)."""
    return palette_lut(palette)[grey.long()]


def make_grid(images: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """(N,1,28,28) in [-1,1] -> uint8 (H, W) with `padding` black pixels between items."""
    grey = to_uint8(images[:, 0])
    n = grey.shape[0]
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    size = 28 + padding
    canvas = torch.zeros(rows * size + padding, columns * size + padding, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[padding + r * size: padding + r * size + 28, padding + c * size: padding + c * size + 28] = grey[i]
    return canvas


def to_pil(grey: torch.Tensor, palette: str = "grey", scale: int = 1) -> Image.Image:
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be 1-{MAX_SCALE}, not {scale}")
    if palette == "grey":
        image = Image.fromarray(grey.numpy(), mode="L")
    else:
        image = Image.fromarray(colourise(grey, palette).numpy(), mode="RGB")
    if scale > 1:  # nearest-neighbour keeps pixels crisp
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_png(image: Image.Image, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write atomically; the recipe goes in a tEXt chunk as JSON. Raises ExportError (one line)."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    try:
        atomic_write_bytes(buffer.getvalue(), path)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
    return path


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = 4 << 20  # bytes; a recipe is a few KB, larger text chunks are skipped unread


def _png_text(path: Path, key: str) -> str | None:
    """The text stored under `key` in a PNG's tEXt/zTXt/iTXt chunks, walking the chunks without decoding pixels.

    Decoding is not needed to read a recipe, and it fails for our own largest exports (64 items at
    scale 64 are 240M pixels: Pillow refuses them as decompression bombs). ValueError if not a PNG.
    """
    wanted = key.encode("latin-1")
    with open(path, "rb") as handle:
        if handle.read(8) != PNG_SIGNATURE:
            raise ValueError("not a PNG file")
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return None  # truncated before IEND: whatever text came first has been seen
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                return None
            if kind not in (b"tEXt", b"zTXt", b"iTXt") or length > MAX_TEXT_CHUNK:
                handle.seek(length + 4, os.SEEK_CUR)  # data + CRC
                continue
            body, crc = handle.read(length), handle.read(4)
            if len(body) < length or len(crc) < 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
                return None  # a damaged chunk ends the walk
            name, _, rest = body.partition(b"\0")
            if name != wanted:
                continue
            try:
                if kind == b"tEXt":
                    return rest.decode("latin-1")
                if kind == b"zTXt":
                    return _inflate(rest[1:]).decode("latin-1")
                compressed, _method, rest = rest[0], rest[1], rest[2:]
                _language, _, rest = rest.partition(b"\0")
                _translated, _, text = rest.partition(b"\0")
                return (_inflate(text) if compressed else text).decode("utf-8")
            except (ValueError, IndexError, zlib.error):  # UnicodeDecodeError is a ValueError
                raise ValueError("damaged text chunk") from None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_CHUNK)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The recipe stored by save_png; ValueError (one line) for anything else."""
    path = Path(path)
    try:
        text = _png_text(path, METADATA_KEY)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a PNG") from None
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error.strerror or type(error).__name__})") from None
    except ValueError as error:
        raise ValueError(f"{path} is not a readable image ({error})") from None
    if text is None:
        raise ValueError(f"{path} carries no fashion-tui recipe")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"{path} has a damaged fashion-tui recipe") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} has a damaged fashion-tui recipe")
    return data


def unique_path(directory: Path, stem: str, suffix: str = ".png") -> Path:
    """directory/stem.png, or stem-2.png, stem-3.png ... : never overwrite."""
    candidate = directory / f"{stem}{suffix}"
    counter = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{counter}{suffix}"
        counter += 1
    return candidate
