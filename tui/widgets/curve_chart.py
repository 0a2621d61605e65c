"""Curves on shared axes, drawn by plotext (textual-plotext's widget) in braille dots: a legend in the
curves' colours with the chart's settings (wrapped between entries onto as many rows as it needs),
then the plot, with a second y axis on the right for curves that ask for it. Below 7 rows the x
axis is left out, so the dots keep every row."""

from __future__ import annotations

import math
from typing import Sequence

from rich.text import Text
from textual_plotext import PlotextPlot

from ..curves import Curve, format_tick, thin, zero_based_ticks

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
        self.y_from_zero: tuple[float, float] | None = None  # linear y axes from 0 to at least (left, right)

    def show(self, curves: Sequence[Curve], log_y: bool = True, x_axis: str = "step", note: str = "",
             x_range: tuple[float, float] | None = None, y_from_zero: tuple[float, float] | None = None) -> None:
        self.curves, self.log_y, self.x_axis, self.note, self.x_range = tuple(curves), log_y, x_axis, note, x_range
        self.y_from_zero = y_from_zero
        self.refresh()

    def legend(self, width: int) -> Text:
        """A row per what fits: entries (a curve, then the note) are never split, a row too narrow
        for one alone ends it in an ellipsis."""
        entries = []
        for curve in self.curves:
            entries.append(Text.assemble(("━ ", f"color({curve.colour})"), curve.label + (" (right)" if curve.right else "")))
        if self.note:
            entries.append(Text(self.note, style="dim"))
        rows: list[Text] = [Text()] if not entries else []
        for entry in entries:
            if rows and rows[-1].cell_len + 2 + entry.cell_len <= width:
                rows[-1].append("  ").append_text(entry)
            else:
                rows.append(entry)
        for row in rows:
            row.truncate(max(1, width), overflow="ellipsis")
        return Text("\n").join(rows)

    def render(self) -> Text:
        width, height = self.size
        drawn = [c for c in self.curves if any(math.isfinite(x) and math.isfinite(y) for x, y in zip(c.xs, c.ys))]
        if not drawn or width < 10 or height < 2:
            return Text.assemble(Text(self.empty, style="dim"), "\n", self.legend(width) if self.curves else "")
        legend = self.legend(width)
        rows = height - len(legend.split())
        if rows < 2:
            return legend
        plt = self.plt
        plt.clear_figure()
        plt.theme(self.theme)
        plt.plotsize(width, rows)
        plt._set_size(width, rows)  # see PlotextPlot.render: plotsize alone does not always take
        for curve in drawn:
            xs, ys = thin(curve.xs, curve.ys, 2 * width)
            plt.plot(xs, ys, marker="braille", color=curve.colour, yside="right" if curve.right else "left")
        plot_rows = rows - (1 if rows < MIN_AXIS_HEIGHT else 3)  # less the frame, the x axis and its labels
        for right in (False, True):
            side = "right" if right else "left"
            values = [y for c in drawn if c.right == right for y in c.ys if math.isfinite(y)]
            # an axis from 0 with round ticks where asked, and where every value is one value (an
            # accuracy stuck at 10%), which plotext labels 9.9999999999999982 and 10.0000000000000000
            flat = bool(values) and max(values) - min(values) <= 1e-9 * max(1.0, abs(max(values)))
            if values and (self.y_from_zero is not None or flat):
                farthest = max(values + [self.y_from_zero[right] if self.y_from_zero else 0.0], key=abs)
                ticks, labels = zero_based_ticks(farthest, min(5, plot_rows))
                plt.ylim(ticks[0], ticks[-1], side)
                plt.yticks(ticks, labels, side)
            elif self.log_y and _log_ok(drawn, right):
                plt.yscale("log", side)
        if rows < MIN_AXIS_HEIGHT:
            plt.xaxes(False, False)
            plt.xticks([])
        else:
            low, high = self.x_range or x_range(drawn)
            if high > low:
                plt.xlim(low, high)
            ticks = [low + (high - low) * i / 4 for i in range(5)] if high > low else [low]
            plt.xticks(ticks, [format_tick(t, self.x_axis) for t in ticks])
        return Text.assemble(legend, "\n", Text.from_ansi(plt.build()))
