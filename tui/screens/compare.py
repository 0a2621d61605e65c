"""The compare view: pick runs under a runs folder (space, as the class list picks classes) and see
their loss and quality curves overlaid on shared axes, each run in its own colour, one pinned on top.

A thread worker lists the runs folder and polls the picked runs (tui.runwatch, without their sample
grids) once a second and posts CompareUpdate; runs written by other processes, half-written lines
and runs deleted while shown are notes, never errors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, SelectionList, Static
from textual.widgets.selection_list import Selection
from textual.worker import get_current_worker

from ..curves import RUN_COLOURS, ChartSettings, loss_curves, quality_curve
from ..messages import CompareUpdate
from ..runwatch import RunTailer, list_runs
from ..widgets.curve_chart import CurveChart, x_range
from ..widgets.status_line import StatusLine
from ..widgets.too_small import TooSmall
from .chart_keys import CHART_BINDINGS, ChartKeys
from .prompt import PathPrompt

POLL_SECONDS = 1.0


class CompareScreen(ChartKeys, Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="back to the monitor"),
        Binding("p", "pin", "Pin", tooltip="draw the highlighted run on top of the others, first in the legend"),
        Binding("f", "follow", "Follow", tooltip="follow the highlighted run in the monitor"),
        Binding("o", "open_root", "Runs folder", tooltip="list the runs of another folder"),
        *CHART_BINDINGS,
    ]

    def __init__(self, settings: ChartSettings, root: Path, picked: Sequence[Path] = ()) -> None:
        super().__init__()
        self.settings, self.root = settings, root
        self.picked: tuple[Path, ...] = tuple(picked)  # in the order they were picked; the worker reads it
        self.pinned: Path | None = None
        self.colours: dict[Path, int] = {}
        self.runs: tuple[Path, ...] = ()
        self.snapshots: dict = {}
        for run in self.picked:
            self._colour(run)

    def compose(self) -> ComposeResult:
        with Horizontal(id="compare-body", classes="layout"):
            with Vertical(id="compare-side"):
                yield Static("", id="compare-root", markup=False)
                yield SelectionList[str](id="compare-runs")
            with Vertical(id="compare-charts"):
                yield CurveChart(id="compare-loss", empty="pick runs with space: their loss curves show here")
                yield CurveChart(id="compare-quality", empty="no quality records yet (quality.jsonl, one per epoch)")
        yield StatusLine(id="status", classes="layout")
        yield TooSmall()
        yield Footer(compact=True)

    def say(self, message: str, severity: str = "info", background: bool = False) -> None:
        self.query_one(StatusLine).say(message, severity, background)

    def on_mount(self) -> None:
        self._show_root()
        self.query_one("#compare-runs").focus()
        self.say("space picks · p pins on top · [ ] smoothing · l log y · a x axis · k acc/KID")
        self._watch()

    def _show_root(self) -> None:
        self.query_one("#compare-root", Static).update(f"runs in {self.root}/")

    def _colour(self, run: Path) -> int:
        if run not in self.colours:
            used = set(self.colours.values())
            self.colours[run] = next((c for c in RUN_COLOURS if c not in used), RUN_COLOURS[len(self.colours) % len(RUN_COLOURS)])
        return self.colours[run]

    # ------------------------------------------------------------ reading the runs
    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _watch(self) -> None:
        worker = get_current_worker()
        tailers: dict[Path, RunTailer] = {}
        while not worker.is_cancelled:
            root, picked = self.root, self.picked
            runs = tuple(list_runs(root)) + tuple(p for p in picked if p.parent != root)  # picked ones stay listed
            tailers = {run: tailers.get(run) or RunTailer(run, samples=False) for run in picked}
            snapshots = {}
            for run, tailer in tailers.items():
                try:
                    snapshots[run] = tailer.poll()
                except Exception:  # keep comparing whatever happens to one run's files
                    tailers[run] = RunTailer(run, samples=False)
            self.post_message(CompareUpdate(snapshots, runs))
            deadline = time.monotonic() + POLL_SECONDS
            while not worker.is_cancelled and time.monotonic() < deadline and self.picked == picked:
                time.sleep(0.05)

    @on(CompareUpdate)
    def compare_update(self, message: CompareUpdate) -> None:
        self.snapshots = message.snapshots
        if message.runs != self.runs:
            self.runs = message.runs
            self._list_runs()
        self.redraw_charts()
        notes = [f"{run.name}: {note}" for run, snapshot in self.snapshots.items() for note in snapshot.notes
                 if "does not exist" in note or "damaged" in note or "replaced" in note]
        if notes:
            self.say(" · ".join(notes), "warning", background=True)

    def _prompt(self, run: Path) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        picked = run in self.picked
        text.append("━ " if picked else "  ", style=f"color({self.colours[run]})" if picked else "")
        text.append(run.name if run.parent == self.root else str(run), style="bold" if run == self.pinned else "")
        return text

    def _list_runs(self) -> None:
        runs_list = self.query_one("#compare-runs", SelectionList)
        highlighted = runs_list.highlighted
        with self.prevent(SelectionList.SelectedChanged):
            runs_list.clear_options()
            runs_list.add_options([Selection(self._prompt(run), str(run), run in self.picked, id=str(run))
                                   for run in self.runs])
        if self.runs:
            first = self.runs.index(self.picked[0]) if self.picked and self.picked[0] in self.runs else 0
            runs_list.highlighted = min(first if highlighted is None else highlighted, len(self.runs) - 1)
        elif not self.picked:
            self.say(f"no run directories in {self.root}/ yet (o lists another folder)", "warning", background=True)

    @on(SelectionList.SelectedChanged, "#compare-runs")
    def picked_changed(self, event: SelectionList.SelectedChanged) -> None:
        chosen = {Path(value) for value in event.selection_list.selected}
        self.picked = tuple(p for p in self.picked if p in chosen) + tuple(
            sorted(p for p in chosen if p not in self.picked))
        for run in list(self.colours):
            if run not in chosen:
                del self.colours[run]  # its colour is free for the next pick
        if self.pinned not in chosen:
            self.pinned = None
        for run in self.picked:
            self._colour(run)
        for run in self.runs:
            event.selection_list.replace_option_prompt(str(run), self._prompt(run))
        self.redraw_charts()

    # ------------------------------------------------------------ drawing
    def _ordered(self) -> list[Path]:
        """The picked runs, the pinned one last: drawn on top of the others."""
        return sorted(self.picked, key=lambda run: run == self.pinned)

    def _label(self, run: Path) -> str:
        snapshot = self.snapshots.get(run)
        gone = snapshot is not None and not snapshot.exists
        return ("▲ " if run == self.pinned else "") + run.name + (" (gone)" if gone else "")

    def redraw_charts(self) -> None:
        loss, quality = [], []
        for run in self._ordered():
            snapshot = self.snapshots.get(run)
            if snapshot is None:
                continue
            loss += loss_curves(snapshot, self.settings, self.colours.get(run, RUN_COLOURS[0]), self._label(run))
            if snapshot.quality:
                quality.append(quality_curve(snapshot, self.settings, self.colours.get(run, RUN_COLOURS[0]),
                                             self._label(run)))
        if self.pinned is not None:  # the pinned run first in the legend, last (on top) in the plot
            loss, quality = loss[-1:] + loss[:-1], quality[-1:] + quality[:-1]
        shared = x_range(loss + quality)  # one x axis for both charts
        self.query_one("#compare-loss", CurveChart).show(loss, self.settings.log_y, self.settings.x_axis,
                                                         f"loss · {self.settings.describe()}", shared)
        self.query_one("#compare-quality", CurveChart).show(quality, self.settings.log_y, self.settings.x_axis,
                                                            self.settings.quality_label(), shared)

    # ------------------------------------------------------------ keys
    def _highlighted(self) -> Path | None:
        runs_list = self.query_one("#compare-runs", SelectionList)
        index = runs_list.highlighted
        return self.runs[index] if index is not None and 0 <= index < len(self.runs) else None

    def action_pin(self) -> None:
        run = self._highlighted()
        if run is None or run not in self.picked:
            self.say("pin a picked run: space picks the highlighted one first", "warning")
            return
        self.pinned = None if self.pinned == run else run
        for each in self.runs:
            self.query_one("#compare-runs", SelectionList).replace_option_prompt(str(each), self._prompt(each))
        self.redraw_charts()
        self.say(f"{run.name} pinned on top" if self.pinned else f"{run.name} unpinned")

    def action_follow(self) -> None:
        run = self._highlighted()
        if run is None:
            self.say("no run highlighted", "warning")
            return
        self.app.pop_screen()
        self.app.screen.attach(run)

    def action_open_root(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.root, self.runs = Path(path), ()
                self._show_root()
                self._watch()

        self.app.push_screen(PathPrompt("List the run directories in a folder", "runs", str(self.root)), chosen)
