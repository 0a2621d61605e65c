"""The monitor's curves, quality line, machine panel and views, mixed into MonitorScreen: v steps
through the views (samples: the curves above the epoch's samples; curves: the curves alone; machine:
images/s, CPU and memory), c opens the compare view, and the chart keys (tui.screens.chart_keys)
change smoothing, the y scale, the x axis and the quality metric."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from core.classes import SHORT_NAMES

from ..curves import CPU, QUALITY, RATE, ChartSettings, Curve, images_per_step, loss_curves, quality_curve, x_values
from ..machine import GIB, describe
from ..messages import MachineUpdate
from ..widgets.curve_chart import CurveChart
from .chart_keys import CHART_BINDINGS, ChartKeys

VIEWS = ("samples", "curves", "machine")
VIEW_BINDINGS = [
    Binding("c", "compare", "Compare", show=False, tooltip="overlay the curves of several runs of the runs folder"),
    Binding("v", "view", "View", show=False, tooltip="the curves above the samples, the curves alone, or the machine"),
    *CHART_BINDINGS,
]


def quality_line(snapshot) -> Text:
    """The newest quality record in a line: accuracy, the worst class, KID and the probe's cost."""
    text = Text(no_wrap=True, overflow="ellipsis")
    records = snapshot.quality if snapshot is not None else ()
    if not records:
        return text.append("quality: none yet (scored at each epoch's end when the test split is there)", style="dim")
    record = records[-1]
    text.append(f"quality e{record.get('epoch', '?')}: ")
    if isinstance(record.get("accuracy"), float):
        text.append(f"accuracy {100 * record['accuracy']:.1f}%", style="bold")
    scores = [(v, SHORT_NAMES[i]) for i, v in enumerate(record.get("per_class_accuracy") or [])
              if isinstance(v, (int, float)) and i < len(SHORT_NAMES)]
    if scores:
        worst = min(scores)
        text.append(f" (worst {worst[1]} {100 * worst[0]:.0f}%)")
    if isinstance(record.get("kid"), float):
        text.append(f" · KID {record['kid']:.4f}")
    if isinstance(record.get("seconds"), (int, float)):
        cost = record.get("cost")
        text.append(f" · probe {record['seconds']:.1f} s" + (f" = {100 * cost:.0f}%" if isinstance(cost, float) else ""),
                    style="dim")
    return text


class MonitorViews(ChartKeys):
    view = "samples"
    reading = None
    history: tuple = ()

    def init_views(self) -> None:
        self.settings = ChartSettings()
        self.set_class(True, "-view-samples")

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        for view in VIEWS:
            self.set_class(view == self.view, f"-view-{view}")
        self.redraw_charts()
        self.say(f"view: {self.view} · v shows the " + VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)])
        self.call_after_refresh(lambda: self._show_samples(self.snapshot))

    def action_compare(self) -> None:
        from .compare import CompareScreen

        root = Path(self.app.options.runs_root)
        self.app.push_screen(CompareScreen(self.settings, root, (self.run_dir,) if self.run_dir else ()))

    def redraw_charts(self) -> None:
        snapshot, settings = self.snapshot, self.settings
        chart = self.query_one("#chart", CurveChart)
        self.query_one("#run-quality", Static).update(quality_line(snapshot))
        if snapshot is None:
            chart.show((), settings.log_y, settings.x_axis)
            return
        curves = loss_curves(snapshot, settings)
        if snapshot.quality:
            curves.append(quality_curve(snapshot, settings, QUALITY, right=True))
        chart.show(curves, settings.log_y, settings.x_axis, settings.describe())
        if self.view == "machine":
            self._redraw_machine()

    def _redraw_machine(self) -> None:
        snapshot, settings = self.snapshot, self.settings
        if snapshot is not None:
            xs = x_values(settings.x_axis, snapshot.steps, snapshot.elapsed, images_per_step(snapshot.info))
            self.query_one("#rate-chart", CurveChart).show([Curve("images/s", xs, snapshot.rates, RATE)], settings.log_y,
                                                           settings.x_axis, settings.describe())
        if self.history:
            now, nan = self.history[-1].time, float("nan")
            xs = tuple((r.time - now) / 60 for r in self.history)
            curves = [Curve("machine cores", xs, tuple(r.machine_cpu * r.cores / 100 if r.machine_cpu is not None
                                                       else nan for r in self.history), CPU),
                      Curve("trainer cores", xs, tuple(r.trainer_cpu / 100 if r.trainer_cpu is not None else nan
                                                       for r in self.history), QUALITY),
                      Curve("trainer GB", xs, tuple(r.trainer_rss / GIB if r.trainer_rss else nan
                                                    for r in self.history), RATE, right=True)]
            # cores from 0 to the machine's count, memory from 0: round ticks, however steady the load
            self.query_one("#machine-chart", CurveChart).show(curves, False, "time", "x: time before now",
                                                              y_from_zero=(self.history[-1].cores, 0.0))

    def on_machine_update(self, message: MachineUpdate) -> None:  # a mixin: Textual finds on_* handlers, not @on
        self.reading, self.history = message.reading, message.history
        info = self.snapshot.info if self.snapshot is not None else {}
        self.query_one("#run-machine", Static).update(Text(describe(self.reading, str(info.get("device", ""))),
                                                           no_wrap=True, overflow="ellipsis"))
        if self.view == "machine":
            self._redraw_machine()
