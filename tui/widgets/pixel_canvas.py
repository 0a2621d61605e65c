"""A scrollable canvas of pixel tiles and one-line labels, drawn with the line API.

Only visible lines are rendered, and runs of equal cells are merged into one segment,
so repainting a 64-item grid while sampling stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..pixels import GREY_PALETTE, Palette, StyleCache, Tile, tile_row_segments


@dataclass(frozen=True)
class Label:
    x: int
    y: int
    width: int
    text: str
    style: Style = Style()


class PixelCanvas(ScrollView):
    DEFAULT_CSS = """
    PixelCanvas {
        scrollbar-size: 1 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._tiles: list[Tile] = []
        self._labels: list[Label] = []
        self._styles = StyleCache(GREY_PALETTE)
        self._palette_caches: list[StyleCache] = [self._styles]  # one per palette seen

    @property
    def palette(self) -> Palette:
        return self._styles.palette

    def set_palette(self, palette: Palette) -> None:
        if palette is not self._styles.palette:
            cached = next((cache for cache in self._palette_caches if cache.palette is palette), None)
            if cached is None:
                cached = StyleCache(palette)
                self._palette_caches.append(cached)
            self._styles = cached  # switching back to a palette finds its styles already made
            self.refresh()

    def set_content(self, tiles: list[Tile], labels: list[Label]) -> None:
        self._tiles, self._labels = tiles, labels
        width = max([t.x + t.columns for t in tiles] + [l.x + l.width for l in labels] + [0])
        height = max([t.y + t.rows for t in tiles] + [l.y + 1 for l in labels] + [0])
        self.virtual_size = Size(width, height)
        self.refresh()

    def region_of(self, tile: Tile, label_rows: int = 1) -> Region:
        return Region(tile.x, tile.y, tile.columns, tile.rows + label_rows)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line_y = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        pieces: list[tuple[int, list[Segment], int]] = []  # (x, segments, cell width)
        for tile in self._tiles:
            if tile.y <= line_y < tile.y + tile.rows:
                pieces.append((tile.x, tile_row_segments(tile, line_y - tile.y, self._styles), tile.columns))
        for label in self._labels:
            if label.y == line_y:
                text = label.text[: label.width].ljust(label.width)
                pieces.append((label.x, [Segment(text, base + label.style)], label.width))
        if not pieces:
            return Strip.blank(width, base)
        pieces.sort(key=lambda piece: piece[0])
        segments: list[Segment] = []
        cursor = 0
        for x, piece, cells in pieces:
            if x > cursor:
                segments.append(Segment(" " * (x - cursor), base))
            segments.extend(piece)
            cursor = x + cells
        return Strip(segments, cursor).crop_extend(scroll_x, scroll_x + width, base)
