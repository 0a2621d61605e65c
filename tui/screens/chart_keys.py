"""The chart keys the monitor and the compare view share: smoothing, log or linear y, the x axis and
the quality metric. A screen mixes this in, holds `settings` (tui.curves.ChartSettings, one object
both screens share) and defines `redraw_charts()` and `say()`."""

from __future__ import annotations

from textual.binding import Binding

from ..curves import SMOOTHING_STEPS, X_AXES

CHART_BINDINGS = [
    Binding("right_square_bracket", "smoothing(1)", "Smooth more", show=False,
            tooltip="TensorBoard's debiased moving average: " + ", ".join(f"{s:g}" for s in SMOOTHING_STEPS)),
    Binding("left_square_bracket", "smoothing(-1)", "Smooth less", show=False, tooltip="down to 0, the raw values"),
    Binding("l", "log_y", "Log/linear y", show=False, tooltip="the y axes on a log or a linear scale"),
    Binding("a", "x_axis", "X axis", show=False, tooltip="the x axis by " + ", ".join(X_AXES) + " (training time)"),
    Binding("k", "quality_metric", "Accuracy/KID", show=False,
            tooltip="the quality curve: the probe's accuracy or its KID to real test items"),
]


class ChartKeys:
    def redraw_charts(self) -> None:
        raise NotImplementedError

    def _changed(self, what: str = "chart") -> None:
        self.redraw_charts()
        self.say(f"{what}: {self.settings.describe()}")

    def action_smoothing(self, direction: int) -> None:
        self.settings.smoother(direction > 0)
        self._changed()

    def action_log_y(self) -> None:
        self.settings.log_y = not self.settings.log_y
        self._changed()

    def action_x_axis(self) -> None:
        self.settings.next_axis()
        self._changed()

    def action_quality_metric(self) -> None:
        self.settings.next_quality()
        self._changed(f"quality curve: {self.settings.quality_label()} · chart")
