"""Grey-level images as terminal cells: two pixels per cell with the upper half block.

A cell shows "▀" with foreground = the top pixel's colour and background = the bottom
pixel's colour, so a 28x28 item is 28 columns x 14 rows at scale 1 (56 x 28 at scale 2).
Images travel as bytes of grey levels 0-255 (row-major), so nothing here needs numpy or
torch; palettes are 256 RGB tuples (see tui.jobs.palette_tables for the real ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.color import Color
from rich.segment import Segment
from rich.style import Style

HALF_BLOCK = "▀"
ITEM_SIZE = 28
MAX_CACHED_STYLES = 20_000

Palette = list[tuple[int, int, int]]  # 256 entries: grey level -> RGB

GREY_PALETTE: Palette = [(level, level, level) for level in range(256)]


@dataclass(frozen=True)
class Tile:
    """One image placed on a canvas measured in cells."""

    x: int  # left column
    y: int  # top row
    width: int  # pixels
    height: int  # pixels
    pixels: bytes  # width * height grey levels, row-major
    scale: int = 1  # each pixel becomes scale x scale pixels (nearest neighbour)

    @property
    def columns(self) -> int:
        return self.width * self.scale

    @property
    def rows(self) -> int:
        return (self.height * self.scale + 1) // 2


class StyleCache:
    """Rich styles for (top, bottom) grey-level pairs in one palette; cleared on palette change."""

    def __init__(self, palette: Palette = GREY_PALETTE):
        self.palette = palette
        self._styles: dict[tuple[int, int], Style] = {}
        self._colours = [Color.from_rgb(*rgb) for rgb in palette]

    def get(self, top: int, bottom: int) -> Style:
        key = (top, bottom)
        style = self._styles.get(key)
        if style is None:
            if len(self._styles) >= MAX_CACHED_STYLES:  # noisy early steps make many pairs; bound the memory
                self._styles.clear()
            style = self._styles[key] = Style.from_color(self._colours[top], self._colours[bottom])
        return style

    def bottom_only(self, top: int) -> Style:
        """Last row of an odd-height image: the lower half is blank (black)."""
        return self.get(top, 0)


def tile_row_segments(tile: Tile, row: int, styles: StyleCache) -> list[Segment]:
    """The segments of one cell row (0 <= row < tile.rows) of a tile; equal neighbours are merged."""
    scale, width, height = tile.scale, tile.width, tile.height
    top_y = (2 * row) // scale
    bottom_y = (2 * row + 1) // scale
    top_line = tile.pixels[top_y * width: (top_y + 1) * width]
    bottom_line = tile.pixels[bottom_y * width: (bottom_y + 1) * width] if bottom_y < height else bytes(width)
    segments: list[Segment] = []
    run_style, run_length = None, 0
    for x in range(width):
        style = styles.get(top_line[x], bottom_line[x])
        if style is run_style:
            run_length += scale
            continue
        if run_length:
            segments.append(Segment(HALF_BLOCK * run_length, run_style))
        run_style, run_length = style, scale
    if run_length:
        segments.append(Segment(HALF_BLOCK * run_length, run_style))
    return segments


def resample_nearest(pixels: bytes, width: int, height: int, out_width: int, out_height: int) -> bytes:
    """Nearest-neighbour resize of a grey image to out_width x out_height (any ratio, e.g. 1.5x)."""
    columns = [x * width // out_width for x in range(out_width)]
    rows = []
    for y in range(out_height):
        start = (y * height // out_height) * width
        line = pixels[start: start + width]
        rows.append(bytes(line[c] for c in columns))
    return b"".join(rows)


def downscale_nearest(pixels: bytes, width: int, height: int, factor: int) -> tuple[bytes, int, int]:
    """Undo a nearest-neighbour upscale by `factor` (take every factor-th pixel)."""
    if factor <= 1:
        return pixels, width, height
    out_w, out_h = width // factor, height // factor
    rows = []
    for y in range(out_h):
        line = pixels[y * factor * width: y * factor * width + width]
        rows.append(line[::factor][:out_w])
    return b"".join(rows), out_w, out_h


def downscale_area(pixels: bytes, size: int, factor: int) -> bytes:
    """A size x size grey image shrunk by `factor` by area averaging (Pillow's box filter, as the
    monitor's thumbnails are): every output pixel is the mean of the factor x factor pixels it covers."""
    from PIL import Image

    small = size // factor
    return Image.frombytes("L", (size, size), pixels).resize((small, small), Image.BOX).tobytes()
