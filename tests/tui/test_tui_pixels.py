"""Half-block rendering: one cell = two pixels, fg = top pixel, bg = bottom pixel, in the chosen palette."""

from __future__ import annotations

from rich.color import Color

from tui.pixels import HALF_BLOCK, StyleCache, Tile, downscale_nearest, resample_nearest, tile_row_segments


def cells(segments):
    """Expand merged segments into one (character, fg, bg) per cell."""
    out = []
    for segment in segments:
        for character in segment.text:
            out.append((character, segment.style.color, segment.style.bgcolor))
    return out


def test_each_cell_shows_top_pixel_as_foreground_and_bottom_as_background():
    width, height = 3, 4
    pixels = bytes(range(0, 240, 20))  # 12 distinct levels
    palette = [(level, 255 - level, 7) for level in range(256)]
    styles = StyleCache(palette)
    tile = Tile(0, 0, width, height, pixels)
    assert (tile.columns, tile.rows) == (3, 2)
    for row in range(tile.rows):
        rendered = cells(tile_row_segments(tile, row, styles))
        assert len(rendered) == width
        for x, (character, fg, bg) in enumerate(rendered):
            top, bottom = pixels[(2 * row) * width + x], pixels[(2 * row + 1) * width + x]
            assert character == HALF_BLOCK
            assert fg == Color.from_rgb(*palette[top])
            assert bg == Color.from_rgb(*palette[bottom])


def test_item_sizes_and_scale_two_doubles_each_pixel():
    item = bytes((x * 9) % 256 for x in range(28 * 28))
    tile = Tile(0, 0, 28, 28, item)
    assert (tile.columns, tile.rows) == (28, 14)
    zoomed = Tile(0, 0, 28, 28, item, scale=2)
    assert (zoomed.columns, zoomed.rows) == (56, 28)
    styles = StyleCache([(v, v, v) for v in range(256)])
    row = cells(tile_row_segments(zoomed, 3, styles))  # scale 2: cell row 3 shows pixel row 3 (top and bottom)
    assert len(row) == 56
    for x in range(28):
        level = item[3 * 28 + x]
        assert row[2 * x] == row[2 * x + 1] == (HALF_BLOCK, Color.from_rgb(level, level, level), Color.from_rgb(level, level, level))


def test_equal_neighbours_merge_into_one_segment():
    styles = StyleCache()
    flat = Tile(0, 0, 28, 2, bytes([128]) * 56)
    segments = tile_row_segments(flat, 0, styles)
    assert len(segments) == 1 and segments[0].text == HALF_BLOCK * 28


def test_downscale_undoes_nearest_upscale():
    original = bytes(range(12))  # 4 x 3
    upscaled = b"".join(bytes(b for b in original[y * 4:(y + 1) * 4] for _ in range(2)) * 2 for y in range(3))
    assert downscale_nearest(upscaled, 8, 6, 2) == (original, 4, 3)


def test_resample_nearest_scales_by_half_steps():
    image = bytes(range(16))  # 4x4
    assert resample_nearest(image, 4, 4, 4, 4) == image
    big = resample_nearest(image, 4, 4, 6, 6)  # 1.5x: every other pixel twice
    assert len(big) == 36 and big[:6] == bytes([0, 0, 1, 2, 2, 3]) and big[6:12] == big[:6]
    assert resample_nearest(image, 4, 4, 8, 8)[:8] == bytes([0, 0, 1, 1, 2, 2, 3, 3])
