"""Line plots in braille characters (2 x 4 dots per cell), for the monitor's loss curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

BRAILLE_BASE = 0x2800
# bit for the dot at (column 0-1, row 0-3) inside one cell
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass
class Plot:
    cells: list[list[int]]  # [row][column] braille bits
    owner: list[list[int]]  # [row][column] index of the last series drawn there, -1 = empty
    low: float  # value at the bottom edge
    high: float  # value at the top edge
    log: bool

    def text_rows(self) -> list[str]:
        return ["".join(chr(BRAILLE_BASE + bits) if bits else " " for bits in row) for row in self.cells]


def resample(values: Sequence[float], count: int) -> list[float]:
    """`count` values: bucket means when shrinking, linear interpolation when stretching."""
    n = len(values)
    if n == 0 or count <= 0:
        return []
    if n == 1:
        return [values[0]] * count
    if n >= count:
        out = []
        for c in range(count):
            start, stop = c * n // count, max(c * n // count + 1, (c + 1) * n // count)
            bucket = values[start:stop]
            out.append(sum(bucket) / len(bucket))
        return out
    out = []
    for c in range(count):
        position = c * (n - 1) / max(1, count - 1)
        left = int(position)
        right = min(n - 1, left + 1)
        frac = position - left
        out.append(values[left] * (1 - frac) + values[right] * frac)
    return out


def plot(series: Sequence[Sequence[float]], width: int, height: int, log: bool = True) -> Plot:
    """Draw every series (same x axis: their index) into width x height cells."""
    width, height = max(1, width), max(1, height)
    cells = [[0] * width for _ in range(height)]
    owner = [[-1] * width for _ in range(height)]
    clean = [[v for v in s if isinstance(v, (int, float)) and math.isfinite(v)] for s in series]
    finite = [v for s in clean for v in s]
    if not finite:
        return Plot(cells, owner, 0.0, 1.0, False)
    log = log and min(finite) > 0
    scale = (lambda v: math.log10(v)) if log else (lambda v: v)
    low, high = scale(min(finite)), scale(max(finite))
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    dot_rows, dot_columns = 4 * height, 2 * width
    for index, values in enumerate(clean):
        if not values:
            continue
        points = resample(values, dot_columns if len(values) > 1 else 1)
        previous = None
        for x, value in enumerate(points):
            y = round((high - scale(value)) / (high - low) * (dot_rows - 1))
            y = min(dot_rows - 1, max(0, y))
            span = range(min(previous, y), max(previous, y) + 1) if previous is not None else (y,)
            for dot_y in span:  # join to the previous column so steep drops stay connected
                row, column = dot_y // 4, x // 2
                cells[row][column] |= DOT_BITS[x % 2][dot_y % 4]
                owner[row][column] = index
            previous = y
    to_value = (lambda v: 10 ** v) if log else (lambda v: v)
    return Plot(cells, owner, to_value(low), to_value(high), log)


def format_value(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.1e}"
    return f"{value:.4g}"
