"""The generated items at true 28px resolution, laid out to fit the width (or at half scale, dense);
one can be zoomed, and its denoising film stepped through."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.message import Message

from ..pixels import ITEM_SIZE, Tile, downscale_area, resample_nearest
from .pixel_canvas import Label, PixelCanvas

GAP = 1  # blank columns between items
ROW_PITCH = ITEM_SIZE // 2 + 2  # item rows + label row + blank row
ITEM_BYTES = ITEM_SIZE * ITEM_SIZE
DENSE = ITEM_SIZE // 2  # the dense view's items: half scale, area-averaged (14 columns x 7 rows)
DENSE_PITCH = DENSE // 2 + 1  # item rows + label row: 8 items (two rows of four) at 80x24
FILM_GAP = 2  # columns between a film frame's x_t and its predicted x_0
SELECTED = Style(reverse=True, bold=True)
PLAIN = Style(dim=True)


class ItemGrid(PixelCanvas, can_focus=True):
    BINDINGS = [
        Binding("left", "move(-1, 0)", "Previous item", show=False),
        Binding("right", "move(1, 0)", "Next item", show=False),
        Binding("up,k", "move(0, -1)", "Item above", show=False),
        Binding("down,j", "move(0, 1)", "Item below", show=False),
        Binding("home", "select(0)", "First item", show=False),
        Binding("end", "select(-1)", "Last item", show=False),
    ]

    @dataclass
    class Selected(Message):
        index: int

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.pixels = b""
        self.count = 0
        self.captions: list[str] = []
        self.selected = 0
        self.zoomed = False
        self.placeholder = "no items yet: press g to generate"
        self.columns = 1
        self.dense = False  # items at half scale, so 8 or more show at 80x24
        self.film: list[tuple[str, bytes, bytes]] | None = None  # the selected item's (label, x_t, x_0) frames
        self.frame = 0

    # ------------------------------------------------------------ content
    def show(self, pixels: bytes, count: int, captions: list[str] | None = None) -> None:
        """Replace the pixels (count items of 28x28 grey levels); keeps the selection if it still exists."""
        relayout = count != self.count or captions is not None
        self.pixels, self.count = pixels, count
        if captions is not None:
            self.captions = captions
        if self.selected >= count:
            self.selected = max(0, count - 1)
        if relayout:
            self.layout_items()
        else:
            self._update_tiles()

    def clear(self, placeholder: str) -> None:
        self.pixels, self.count, self.captions, self.placeholder = b"", 0, [], placeholder
        self.film = None
        self.layout_items()

    def set_zoom(self, zoomed: bool) -> None:
        self.zoomed = zoomed
        if not zoomed:
            self.film = None
        self.layout_items()
        self.scroll_to(0, 0, animate=False)
        if not zoomed:
            self.call_after_refresh(self._reveal_selected)

    def set_dense(self, dense: bool) -> None:
        self.dense = dense
        self.layout_items()
        self.call_after_refresh(self._reveal_selected)

    def show_film(self, frames: list[tuple[str, bytes, bytes]]) -> None:
        """Step through the selected item's film (zoomed): x_t and the predicted x_0 side by side."""
        self.film, self.frame, self.zoomed = frames, 0, True
        self.layout_items()
        self.scroll_to(0, 0, animate=False)

    def item_pixels(self, index: int) -> bytes:
        return self.pixels[index * ITEM_BYTES: (index + 1) * ITEM_BYTES]

    def _tile_pixels(self, index: int) -> bytes:
        pixels = self.item_pixels(index)
        return downscale_area(pixels, ITEM_SIZE, 2) if self.dense and len(pixels) == ITEM_BYTES else pixels

    # ------------------------------------------------------------ layout
    def _usable_width(self) -> int:
        return max(ITEM_SIZE, self.size.width - 1)  # one column kept for the scrollbar, so it never flips

    def zoom_scale(self) -> float:
        """The largest scale in steps of 0.5 at which the whole item fits below its caption (at least 1):
        1.5x at 80x24, where 2x would need 28 rows."""
        fit_width = self._usable_width() / ITEM_SIZE
        fit_height = max(1, self.size.height - 1) * 2 / ITEM_SIZE
        return max(1.0, int(2 * min(fit_width, fit_height)) / 2)

    def _tiles_and_labels(self) -> tuple[list, list]:
        if self.count == 0:
            return [], [Label(1, 1, max(10, self._usable_width() - 2), self.placeholder, PLAIN)]
        if self.film is not None:
            return self._film_tiles()
        if self.zoomed:
            scale = self.zoom_scale()
            size = round(ITEM_SIZE * scale)  # whole pixels: a half-step scale repeats every other pixel
            tile = Tile(0, 1, size, size, resample_nearest(self.item_pixels(self.selected), ITEM_SIZE, ITEM_SIZE, size, size))
            caption = f"{self.selected + 1}/{self.count} {self._caption(self.selected)} · zoom {scale:g}x · ←→ item · z back"
            return [tile], [Label(0, 0, max(tile.columns, self._usable_width()), caption, SELECTED)]  # 1x: wider than the item
        size, gap, pitch = (DENSE, 1, DENSE_PITCH) if self.dense else (ITEM_SIZE, GAP, ROW_PITCH)
        if self.dense and self._usable_width() // size > (self._usable_width() + gap) // (size + gap):
            gap = 0  # four to a row at 80x24, where a gap would leave three
        self.columns = max(1, (self._usable_width() + gap) // (size + gap))
        tiles, labels = [], []
        for index in range(self.count):
            row, column = divmod(index, self.columns)
            x, y = column * (size + gap), row * pitch
            tiles.append(Tile(x, y, size, size, self._tile_pixels(index)))
            mark = "▶" if index == self.selected else " "
            caption = "" if self.dense else f" {self._caption(index)}"  # 14 columns: a seed would be cut
            labels.append(Label(x, y + size // 2, size, f"{mark}{index + 1:>2}{caption}",
                                SELECTED if index == self.selected else PLAIN))
        return tiles, labels

    def _film_tiles(self) -> tuple[list, list]:
        """The frame's x_t and predicted x_0 side by side, as large as both fit (1x at 80x24)."""
        label, x_t, x0 = self.film[self.frame]
        fit_width = (self._usable_width() - FILM_GAP) / (2 * ITEM_SIZE)
        fit_height = max(1, self.size.height - 2) * 2 / ITEM_SIZE
        size = round(ITEM_SIZE * max(1.0, int(2 * min(fit_width, fit_height)) / 2))
        tiles, labels = [], []
        for column, (name, pixels) in enumerate((("x_t (noisy)", x_t), ("predicted x_0", x0))):
            x = column * (size + FILM_GAP)
            tiles.append(Tile(x, 2, size, size, resample_nearest(pixels, ITEM_SIZE, ITEM_SIZE, size, size)))
            labels.append(Label(x, 1, size, name, PLAIN))
        caption = (f"item {self.selected + 1} · {label} · frame {self.frame + 1}/{len(self.film)} · "
                   "←→ step · e exports · f back")
        labels.append(Label(0, 0, max(2 * size + FILM_GAP, self._usable_width()), caption, SELECTED))
        return tiles, labels

    def _caption(self, index: int) -> str:
        return self.captions[index] if index < len(self.captions) else ""

    def layout_items(self) -> None:
        tiles, labels = self._tiles_and_labels()
        self.set_content(tiles, labels)

    def _update_tiles(self) -> None:
        """New pixels, same layout: swap the tiles' bytes only."""
        if self.zoomed or len(self._tiles) != self.count:
            self.layout_items()
            return
        self._tiles = [Tile(t.x, t.y, t.width, t.height, self._tile_pixels(i), t.scale) for i, t in enumerate(self._tiles)]
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.layout_items()

    # ------------------------------------------------------------ selection
    def action_move(self, dx: int, dy: int) -> None:
        if self.film is not None:  # left/right one frame, up/down five
            self.frame = min(len(self.film) - 1, max(0, self.frame + dx + 5 * dy))
            self.layout_items()
            return
        if self.count == 0:
            return
        step = dx + dy * (1 if self.zoomed else self.columns)
        target = self.selected + step
        if 0 <= target < self.count:
            self.select(target)

    def action_select(self, index: int) -> None:
        if self.film is not None:
            self.frame = index % len(self.film)
            self.layout_items()
        elif self.count:
            self.select(index % self.count)

    def select(self, index: int) -> None:
        self.selected = index
        self.layout_items()
        self._reveal_selected()
        self.post_message(self.Selected(index))

    def _reveal_selected(self) -> None:
        if self.zoomed or not self._tiles or self.selected >= len(self._tiles):
            return
        self.scroll_to_region(self.region_of(self._tiles[self.selected]), animate=False)
