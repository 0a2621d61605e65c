"""The monitor's loss curve: raw loss (dim) and smoothed loss (bright) in braille, log scale."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..chart import format_value, plot

GUTTER = 8  # columns for the y labels
SERIES_STYLES = ("grey50", "bold cyan")  # raw, smoothed


class LossChart(Widget):
    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps: tuple[int, ...] = ()
        self.loss: tuple[float, ...] = ()
        self.loss_smooth: tuple[float, ...] = ()

    def set_series(self, steps, loss, loss_smooth) -> None:
        self.steps, self.loss, self.loss_smooth = steps, loss, loss_smooth
        self.refresh()

    def render(self) -> Text:
        width, height = self.size
        if not self.loss:
            return Text("no loss values yet", style="dim")
        plot_height = max(1, height - 1)
        drawing = plot([self.loss, self.loss_smooth], max(1, width - GUTTER), plot_height, log=True)
        text = Text(no_wrap=True)
        rows = drawing.text_rows()
        for y, row in enumerate(rows):
            if y == 0:
                label = format_value(drawing.high)
            elif y == len(rows) - 1:
                label = format_value(drawing.low)
            else:
                label = ""
            text.append(label.rjust(GUTTER - 1)[: GUTTER - 1] + "┤", style="dim")
            for x, character in enumerate(row):
                owner = drawing.owner[y][x]
                text.append(character, style=SERIES_STYLES[owner] if owner >= 0 else "")
            text.append("\n")
        scale = "log" if drawing.log else "linear"
        footer = f"step {self.steps[0]}".ljust(max(0, (width - GUTTER) // 2)) + f"step {self.steps[-1]}"
        text.append(" " * GUTTER + footer[: max(0, width - GUTTER - 22)], style="dim")
        text.append("  loss", style=SERIES_STYLES[0])
        text.append(" smoothed", style=SERIES_STYLES[1])
        text.append(f" ({scale})", style="dim")
        return text
