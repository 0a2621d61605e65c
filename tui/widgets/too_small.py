"""Shown instead of a screen's layout when the terminal is below the minimum size."""

from __future__ import annotations

from textual.widget import Widget

MIN_WIDTH, MIN_HEIGHT = 60, 20


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


class TooSmall(Widget):
    DEFAULT_CSS = """
    TooSmall {
        display: none;
        width: 1fr;
        height: 1fr;
        content-align: center middle;
        text-align: center;
    }
    """

    def render(self) -> str:
        width, height = self.app.size
        return (f"Terminal too small ({width}x{height}).\nfashion-tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}:\n"
                "make the window bigger.  q quits.")
