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


def pixel_levels(image: Image.Image) -> torch.Tensor:
    """An 8-bit image's levels: (H, W) uint8 for one band (L), (H, W, C) for more (RGB, RGBA).
    Read through tobytes, which every Pillow since 10 has (Image.getdata goes in Pillow 14)."""
    bands = len(image.getbands())
    levels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return levels.reshape(image.height, image.width, bands) if bands > 1 else levels.reshape(image.height, image.width)


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
    return _save(image, Path(path), "PNG", metadata)


def _save(image: Image.Image, path: Path, kind: str, metadata: dict | None = None, **options) -> Path:
    """Encode (a PNG carries `metadata` as the recipe's text chunk) and write atomically; ExportError (one line)."""
    if kind == "PNG":
        info = PngImagePlugin.PngInfo()
        if metadata is not None:
            info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
        options["pnginfo"] = info
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
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


# ---------------------------------------------------------------- pictures to edit from
MAX_SOURCE_PIXELS = 4096 * 4096  # larger pictures are refused from their header, before any decoding
MAX_SOURCE_BYTES = 64 << 20  # and so are larger files
TRIM_LEVEL = 13  # grey levels (5% of 255): how close to the background colour an edge must be to be trimmed


def read_source_image(path: str | os.PathLike) -> tuple[bytes, str]:
    """A picture to edit from as the dataset's items are: 28x28 grey levels, a light item on black,
    and how it was made so (a few words). ValueError (one line) for anything that is not one still,
    8-bit picture of a sane size.

    An item this app exported (its recipe names the palette) has its palette undone and its scale
    taken back, so it comes back pixel for pixel. Any other picture is made as Fashion-MNIST made its
    items from product photos: grey (luma; transparency over white), negated when its border is
    mostly light (a dark item on a light background), and then, unless it is 28k x 28k pixels made of
    k x k blocks (an item already), trimmed of the edges within 5% of the background colour, its
    background stretched to black, scaled by area averaging so that its longer side is 28 pixels and
    centred on black."""
    path = Path(path)
    recipe = _recipe_or_none(path)
    if recipe is not None and "columns" in recipe:
        raise ValueError(f"{path} is a grid of items: open the PNG of one item")
    image = _open_still(path)
    grey, how = _to_grey(image, recipe)
    pixels = pixel_levels(grey)  # (H, W)
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if recipe is None and border.float().mean() > 127:  # mostly light around the edge: a dark item on light
        pixels, border = 255 - pixels, 255 - border
        how += ", negated (a light background)"
    height, width = pixels.shape
    if width == height and width % 28 == 0:
        scale = width // 28
        blocks = pixels.reshape(28, scale, 28, scale)
        if bool((blocks == blocks[:, :1, :, :1]).all()):
            return blocks[:, 0, :, 0].contiguous().numpy().tobytes(), how + (f", a 28px item at {scale}x" if scale > 1 else "")
    return _as_dataset_item(path, pixels, int(border.float().median()), how)


def _recipe_or_none(path: Path) -> dict | None:
    try:
        return read_metadata(path)
    except ValueError:
        return None


def _open_still(path: Path) -> Image.Image:
    import warnings

    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise ValueError(f"{path} is too large a file ({path.stat().st_size >> 20} MB; at most {MAX_SOURCE_BYTES >> 20} MB)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as probe:  # reads the header only
                width, height = probe.size
                if width * height > MAX_SOURCE_PIXELS:
                    raise ValueError(f"{path} is too large a picture ({width}x{height}; at most {MAX_SOURCE_PIXELS:,} pixels)")
                if getattr(probe, "n_frames", 1) > 1:
                    raise ValueError(f"{path} is animated ({probe.n_frames} frames): give one still picture")
                if probe.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F") or any(
                        isinstance(tile.args, str) and ";16" in tile.args for tile in probe.tile):
                    raise ValueError(f"{path} has 16-bit or floating-point pixels: save it as an 8-bit picture")
                probe.verify()  # checksums and structure, without decoding
            image = Image.open(path)
            image.load()
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a picture") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"{path} is too large a picture (a decompression bomb?)") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"{path} is not a picture Pillow can read") from None
    except (OSError, SyntaxError, struct.error, zlib.error, EOFError) as error:  # unreadable, truncated or damaged
        detail = getattr(error, "strerror", None) or " ".join(str(error).split())[:80] or type(error).__name__
        raise ValueError(f"{path} cannot be read as a picture ({detail})") from None
    return image


def _to_grey(image: Image.Image, recipe: dict | None) -> tuple[Image.Image, str]:
    """Grey levels: an exported item's palette undone (each colour to its nearest palette entry);
    transparency over white; anything else by luma (ITU-R 601)."""
    how = f"{image.width}x{image.height} {image.mode}"
    palette = recipe.get("palette") if recipe else None
    if isinstance(palette, str) and palette in PALETTE_STOPS and palette != "grey":
        rgb = pixel_levels(image.convert("RGB")).reshape(-1, 3).float()  # (pixels, 3)
        levels = torch.cdist(rgb, palette_lut(palette).float()).argmin(dim=1).to(torch.uint8)
        return Image.frombytes("L", image.size, levels.numpy().tobytes()), how + f", {palette} palette undone"
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
        how += ", transparency over white"
    return image.convert("L"), how


def _as_dataset_item(path: Path, pixels: torch.Tensor, background: int, how: str) -> tuple[bytes, str]:
    """(H, W) uint8, a light item on `background` -> 28x28: trimmed, stretched, scaled, centred."""
    foreground = (pixels.int() - background).abs() > TRIM_LEVEL
    rows, columns = foreground.any(dim=1).nonzero(), foreground.any(dim=0).nonzero()
    if len(rows) == 0:
        raise ValueError(f"{path} is blank (one colour): nothing to edit from")
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    item = ((pixels[top:bottom, left:right].float() - background) * 255 / max(1, 255 - background)).clamp(0, 255)
    width, height = right - left, bottom - top
    fit = 28 / max(width, height)
    size = (max(1, round(width * fit)), max(1, round(height * fit)))
    small = Image.frombytes("L", (width, height), item.round().to(torch.uint8).numpy().tobytes()).resize(size, Image.BOX)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(small, ((28 - size[0]) // 2, (28 - size[1]) // 2))
    return canvas.tobytes(), how + f", trimmed to {width}x{height}, scaled to {size[0]}x{size[1]} by area averaging, centred"


# ---------------------------------------------------------------- the denoising film
FILM_FORMATS = ("png", "gif")  # animated PNG (carries the recipe) or GIF


def save_film(frames: list[tuple[str, torch.Tensor, torch.Tensor]], path: str | os.PathLike, palette: str = "grey",
              scale: int = 4, metadata: dict | None = None, frame_ms: int = 150, last_ms: int = 1500) -> Path:
    """An animated PNG or GIF (by the path's suffix) of (label, x_t, predicted x_0) frames, uint8
    (28, 28) grey levels each: the two side by side below the label. Only a PNG carries the recipe."""
    from PIL import ImageDraw, ImageFont

    path = Path(path)
    gif = path.suffix.lower() == ".gif"
    try:
        font = ImageFont.load_default(size=max(10, 3 * scale))
    except (TypeError, OSError, ImportError):  # Pillow built without FreeType: its bitmap font
        font = ImageFont.load_default()
    side, pad, band = 28 * scale, 2 * scale, 5 * scale
    images = []
    for label, x_t, x0 in frames:
        frame = Image.new("RGB", (2 * side + 3 * pad, band + side + pad), (0, 0, 0))
        for column, grey in enumerate((x_t, x0)):
            frame.paste(to_pil(grey, palette, scale).convert("RGB"), (pad + column * (side + pad), band))
        ImageDraw.Draw(frame).text((pad, scale), label, fill=(230, 230, 230), font=font)
        images.append(frame)
    durations = [frame_ms] * (len(images) - 1) + [last_ms]
    return _save(images[0], path, "GIF" if gif else "PNG", None if gif else metadata, save_all=True,
                 append_images=images[1:], duration=durations, loop=0)
