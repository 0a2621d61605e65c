"""Curves on shared axes, drawn by plotext (textual-plotext's widget) in braille dots: a legend row in
the curves' colours with the chart's settings, then the plot, with a second y axis on the right for
curves that ask for it. Below 7 rows the x axis is left out, so the dots keep every row."""

from __future__ import annotations

import math
from typing import Sequence

from rich.text import Text
from textual_plotext import PlotextPlot

from ..curves import Curve, format_tick, thin

MIN_AXIS_HEIGHT = 7  # rows from which the x axis (a rule and its tick labels) is drawn


def _log_ok(curves: Sequence[Curve], right: bool) -> bool:
    """A log axis needs positive values that are not all one value (plotext mislabels that)."""
    values = [y for c in curves if c.right == right for y in c.ys if math.isfinite(y)]
    return bool(values) and min(values) > 0 and max(values) > min(values)


def x_range(curves: Sequence[Curve]) -> tuple[float, float] | None:
    """The smallest and largest finite x of the curves (None when they have none)."""
    xs = [x for c in curves for x, y in zip(c.xs, c.ys) if math.isfinite(x) and math.isfinite(y)]
    return (min(xs), max(xs)) if xs else None


class CurveChart(PlotextPlot):
    DEFAULT_CSS = """
    CurveChart {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None, empty: str = "no values yet") -> None:
        super().__init__(id=id)
        self.theme = "clear"  # the terminal's own colours: no painted background, legible on any scheme
        self.empty = empty
        self.curves: tuple[Curve, ...] = ()
        self.log_y = True
        self.x_axis = "step"
        self.note = ""  # shown after the legend: the settings, what is missing
        self.x_range: tuple[float, float] | None = None  # shared with another chart; None: this chart's own

    def show(self, curves: Sequence[Curve], log_y: bool = True, x_axis: str = "step", note: str = "",
             x_range: tuple[float, float] | None = None) -> None:
        self.curves, self.log_y, self.x_axis, self.note, self.x_range = tuple(curves), log_y, x_axis, note, x_range
        self.refresh()

    def legend(self, width: int) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for curve in self.curves:
            text.append("━ ", style=f"color({curve.colour})")
            text.append(curve.label + (" (right)" if curve.right else "") + "  ")
        text.append(self.note, style="dim")
        text.truncate(width, overflow="ellipsis")
        return text

    def render(self) -> Text:
        width, height = self.size
        drawn = [c for c in self.curves if any(math.isfinite(x) and math.isfinite(y) for x, y in zip(c.xs, c.ys))]
        if not drawn or width < 10 or height < 2:
            return Text.assemble(Text(self.empty, style="dim"), "\n", self.legend(width) if self.curves else "")
        plt = self.plt
        plt.clear_figure()
        plt.theme(self.theme)
        plt.plotsize(width, height - 1)
        plt._set_size(width, height - 1)  # see PlotextPlot.render: plotsize alone does not always take
        for curve in drawn:
            xs, ys = thin(curve.xs, curve.ys, 2 * width)
            plt.plot(xs, ys, marker="braille", color=curve.colour, yside="right" if curve.right else "left")
        for right in (False, True):
            if self.log_y and _log_ok(drawn, right):
                plt.yscale("log", "right" if right else "left")
        if height - 1 < MIN_AXIS_HEIGHT:
            plt.xaxes(False, False)
            plt.xticks([])
        else:
            low, high = self.x_range or x_range(drawn)
            if high > low:
                plt.xlim(low, high)
            ticks = [low + (high - low) * i / 4 for i in range(5)] if high > low else [low]
            plt.xticks(ticks, [format_tick(t, self.x_axis) for t in ticks])
        return Text.assemble(self.legend(width), "\n", Text.from_ansi(plt.build()))
