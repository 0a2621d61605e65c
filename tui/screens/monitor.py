"""The monitor: follow a run directory live (this app's training or another process's) and start,
pause or stop a training of its own; its curves, quality line, machine panel and views are
tui.screens.monitor_views, the compare view tui.screens.compare.

A thread worker polls the run directory (tui.runwatch) and the machine (tui.machine) and posts
RunUpdate snapshots and MachineUpdate readings that replace each other; another runs
core.training.trainer.Trainer and posts when it starts and ends.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from core.classes import SHORT_NAMES

from ..machine import MachineWatch
from ..messages import MachineUpdate, OpenCheckpoint, RunUpdate, TrainingEnded, TrainingStarted
from ..pixels import Tile
from ..runwatch import RunSnapshot, RunTailer, newest_checkpoint
from ..widgets.curve_chart import CurveChart
from ..widgets.pixel_canvas import Label, PixelCanvas
from ..widgets.status_line import StatusLine
from ..widgets.too_small import TooSmall
from .monitor_views import VIEW_BINDINGS, MonitorViews
from .prompt import PathPrompt

POLL_SECONDS = 0.5
MACHINE_SECONDS = 1.0  # between readings of the machine
SAMPLE_NAME_WIDTH = 8  # cells for a class name above its items
SAMPLE_CLASS_GAP = 2  # blank cells between classes side by side


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


class MonitorScreen(MonitorViews, Screen):
    BINDINGS = [
        Binding("o", "open_run", "Open run", tooltip="follow a run directory (train_cli.py's or this app's), live"),
        Binding("t", "train", "Train", tooltip="start a new training here, in runs/tui-YYYYmmdd-HHMMSS"),
        Binding("r", "resume", "Resume", tooltip="continue the followed run from its newest checkpoint, with its own settings"),
        Binding("p", "pause", "Pause", tooltip="pause or resume this app's training"),
        Binding("x", "stop", "Stop", tooltip="stop this app's training (it saves a checkpoint first)"),
        Binding("g", "use_newest", "Generate", tooltip="switch to generate, on the run's newest checkpoint"),
        *VIEW_BINDINGS,
        Binding("escape", "app.switch_mode('generate')", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.snapshot: RunSnapshot | None = None
        self.trainer = None  # core.training.trainer.Trainer while this app trains
        self.training_dir: Path | None = None
        self.init_views()

    def compose(self) -> ComposeResult:
        with Vertical(id="monitor-body", classes="layout"):
            yield Static("", id="run-title", markup=False)
            yield Static("", id="run-progress", markup=False)
            yield Static("", id="run-quality", markup=False)
            yield Static("", id="run-machine", markup=False)
            yield CurveChart(id="chart", empty="no loss values yet")
            yield CurveChart(id="rate-chart", empty="no images/s yet")
            yield CurveChart(id="machine-chart", empty="reading the machine…")
            yield Static("", id="run-checkpoints", markup=False)
            yield PixelCanvas(id="samples")
        yield StatusLine(id="status", classes="layout")
        yield TooSmall()
        yield Footer(compact=True)

    def say(self, message: str, severity: str = "info", background: bool = False) -> None:
        self.query_one(StatusLine).say(message, severity, background)
        if severity == "error":
            self.app.notify(message, severity=severity, timeout=6, markup=False)

    def on_mount(self) -> None:
        if self.app.options.run_dir:
            self.attach(Path(self.app.options.run_dir))
        else:
            self.detach()

    def detach(self) -> None:
        self.workers.cancel_group(self, "tail")
        self.run_dir, self.snapshot = None, None
        self.redraw_charts()
        self.query_one("#run-checkpoints", Static).update("")
        self.query_one("#samples", PixelCanvas).set_content([], [])
        self.query_one("#run-title", Static).update("no run attached")
        self.query_one("#run-progress", Static).update(
            "o follows a run directory (train_cli.py's or this app's) · r resumes it\n"
            f"t starts a new training in {self.app.options.runs_root}/tui-… · g generates with it")
        self.say("o follows a run directory · t starts a new training here")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "stop"):
            return self.trainer is not None  # only this app's own training can be paused or stopped
        if action == "resume":
            return self.trainer is None and self.run_dir is not None
        return True

    def on_unmount(self) -> None:
        if self.trainer is not None:
            self.trainer.stop("app closed")

    # ------------------------------------------------------------ following a run
    def attach(self, run_dir: Path) -> None:
        self.run_dir, self.snapshot = run_dir, None
        self.query_one("#run-title", Static).update(f"run {run_dir} · reading…")
        self.say(f"following {run_dir} · v views · c compares runs")
        self._tail(run_dir)

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def _tail(self, run_dir: Path) -> None:
        worker = get_current_worker()
        tailer, machine = RunTailer(run_dir), MachineWatch()
        last_version, info, machine_due = None, {}, 0.0
        while not worker.is_cancelled:
            if time.monotonic() >= machine_due:  # /proc and NVML: a few small reads, never the trainer's
                reading = machine.poll(info.get("pid"), str(info.get("device", "")))
                self.post_message(MachineUpdate(reading, tuple(machine.history)))
                machine_due = time.monotonic() + MACHINE_SECONDS
            try:
                snapshot = tailer.poll()
            except Exception as error:  # keep following whatever happens to the files
                tailer = RunTailer(run_dir)
                snapshot = RunSnapshot(run_dir, run_dir.is_dir(), {}, notes=(f"could not read the run: {error}",),
                                       version=-1)
            info = snapshot.info or info
            if snapshot.version != last_version:
                last_version = snapshot.version
                self.post_message(RunUpdate(snapshot))
            deadline = time.monotonic() + POLL_SECONDS
            while not worker.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.05)

    @on(RunUpdate)
    def run_update(self, message: RunUpdate) -> None:
        snapshot = message.snapshot
        if snapshot.run_dir != self.run_dir:
            return
        self.snapshot = snapshot
        self.query_one("#run-title", Static).update(self._title(snapshot))
        self.query_one("#run-progress", Static).update(self._progress(snapshot))
        self.redraw_charts()
        self.query_one("#run-checkpoints", Static).update(self._checkpoints(snapshot))
        self._show_samples(snapshot)
        if snapshot.notes:
            self.say(" · ".join(snapshot.notes), "warning")
        else:
            self.say(f"following {snapshot.run_dir} · updated {dt.datetime.now():%H:%M:%S}", background=True)

    def _state(self, snapshot: RunSnapshot) -> str:
        info = snapshot.info
        state = info.get("state", "unknown") if snapshot.exists else "missing"
        if self.trainer is not None and self.training_dir == snapshot.run_dir:
            return "paused (this app)" if self.trainer.paused else f"{state} (this app)"
        if state == "running" and info.get("pid") and not pid_alive(info["pid"]):
            return f"running? (process {info['pid']} is gone)"
        return state

    def _title(self, snapshot: RunSnapshot) -> str:
        info = snapshot.info
        parts = [self._state(snapshot)]
        if info.get("device"):
            parts.append(f"device {info['device']}")
        if info.get("preset"):
            parts.append(f"preset {info['preset']}")
        return " · ".join(parts) + f" · run {snapshot.run_dir}"  # the path last: the longest part, and it wraps

    def _progress(self, snapshot: RunSnapshot) -> Text:
        latest, info = snapshot.latest, snapshot.info
        total = latest.get("total_steps") or info.get("total_steps") or 0
        step = latest.get("step", info.get("step", 0)) or 0
        fraction = min(1.0, step / total) if total else 0.0
        filled = round(20 * fraction)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"step {step:,}/{total:,} " if total else f"step {step:,} ")
        text.append("▕" + "█" * filled + "░" * (20 - filled) + "▏", style="cyan")
        text.append(f" {100 * fraction:.1f}%")
        epochs = info.get("epochs")
        if "epoch" in latest:
            text.append(f" · epoch {latest['epoch']:.2f}" + (f"/{epochs}" if epochs else ""))
        if "elapsed_sec" in latest:  # on this row: the next one fills 80 columns by itself
            text.append(f" · ran {duration(latest['elapsed_sec'])}", style="dim")
        text.append("\n")
        if "loss" in latest:
            text.append(f"loss {latest['loss']:.4f}", style="bold")
            text.append(f" · smoothed {latest.get('loss_smooth', latest['loss']):.4f}")
        if "images_per_sec" in latest:
            text.append(f" · {latest['images_per_sec']:.0f} img/s")
        if "eta_sec" in latest and step < total:
            text.append(f" · ETA {duration(latest['eta_sec'])}")
        if "lr" in latest:
            text.append(f" · lr {latest['lr']:.1e}")
        if not latest:
            text.append("no metrics yet", style="dim")
        return text

    def _checkpoints(self, snapshot: RunSnapshot) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if not snapshot.checkpoints:
            return text.append("checkpoints: none yet", style="dim")
        text.append(f"checkpoints ({len(snapshot.checkpoints)}): ")
        for name in snapshot.checkpoints[:-1][-3:]:
            text.append(name.removesuffix(".pt") + " ", style="dim")
        text.append(snapshot.checkpoints[-1].removesuffix(".pt"), style="bold green")
        text.append(" ← newest, g generates with it", style="dim")
        return text

    def _show_samples(self, snapshot: RunSnapshot | None) -> None:
        canvas = self.query_one("#samples", PixelCanvas)
        grid = snapshot.sample if snapshot is not None else None
        if grid is None:
            canvas.set_content([], [Label(1, 0, 70, "no sample grid yet (one is written at the end of each epoch)",
                                          Style(dim=True))])
            return
        width = max(20, canvas.size.width - 1)  # one column kept for the scrollbar
        tiles, labels, size, per_class = sample_layout(grid, width, max(2, canvas.size.height))
        shown = f"{per_class} of {grid.per_class}" if per_class < grid.per_class else f"{per_class}"
        title = Label(0, 0, width, f"samples after epoch {grid.epoch} ({grid.path.name}): {shown} per class"
                      + (f" at {size}px" if size != 28 else ""))
        canvas.set_content(tiles, [title] + labels)

    def on_resize(self, event) -> None:
        self.call_after_refresh(lambda: self._show_samples(self.snapshot))  # the newest snapshot, once laid out

    def action_open_run(self) -> None:
        self.app.push_screen(PathPrompt("Follow a run directory (written by train_cli.py or this app)", "runs/default",
                                        str(self.run_dir or "")),
                             lambda path: self.attach(Path(path)) if path else None)

    # ------------------------------------------------------------ training from here
    def action_train(self) -> None:
        if self.trainer is not None or self.training_dir is not None:
            self.say(f"a training is already running here ({self.training_dir}); x stops it", "warning")
            return
        options = self.app.options
        run_dir = Path(options.runs_root) / f"tui-{dt.datetime.now():%Y%m%d-%H%M%S}"
        self.training_dir = run_dir
        self._train(run_dir)
        self.attach(run_dir)
        self.say(f"starting a training in {run_dir} (preset {options.train_preset}; loading data and model…)")

    def action_resume(self) -> None:
        if self.trainer is not None or self.training_dir is not None:
            self.say(f"a training is already running here ({self.training_dir}); x stops it", "warning")
            return
        if self.run_dir is None:
            self.say("no run attached: o follows one, then r resumes it", "warning")
            return
        info = self.snapshot.info if self.snapshot is not None else {}
        pid = info.get("pid")
        if info.get("state") == "running" and pid and str(pid) != str(os.getpid()) and pid_alive(pid):
            self.say(f"{self.run_dir} is still training in process {pid}: stop it there first", "warning")
            return
        self.training_dir = self.run_dir
        self._train(self.run_dir, resume=True)
        self.say(f"resuming {self.run_dir} from its newest checkpoint (loading data and model…)")

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, run_dir: Path, resume: bool = False) -> None:
        worker = get_current_worker()
        options = self.app.options
        trainer = None

        def on_event(event) -> None:
            if worker.is_cancelled and trainer is not None:
                trainer.stop("app closed")

        try:
            from core.evaluation.probe import QualityProbe
            from core.model.config import TrainConfig
            from core.training.trainer import Trainer

            from ..jobs import lower_thread_priority

            lower_thread_priority()  # keys must still repaint quickly while it trains

            tensorboard = None
            if options.tensorboard is not None:  # before the trainer: without the package nothing is written
                from core.training.tensorboard import TensorBoardLog

                tensorboard = TensorBoardLog(Path(options.tensorboard) / run_dir.name if options.tensorboard else None)
            # a resumed run keeps its own epochs, batch, learning rate and EMA; only the device is this app's
            config = TrainConfig(device=options.device, **({} if resume else options.train_overrides))
            trainer = Trainer(run_dir, config, data_dir=options.data_dir, resume=resume, as_trained=resume,
                              on_event=on_event, preset=options.train_preset, quality=QualityProbe(options.data_dir),
                              tensorboard=tensorboard)
            if worker.is_cancelled:
                return
            if trainer.step >= trainer.total_steps:
                self.post_message(TrainingEnded(str(run_dir), "complete", epochs=trainer.train_config.epochs))
                return
            self.post_message(TrainingStarted(trainer, str(run_dir)))
            result = trainer.run()
        except Exception as error:  # DataError, TrainingError, ValueError: one line each
            from ..jobs import one_line

            self.post_message(TrainingEnded(str(run_dir), "failed", error=one_line(error)))
            return
        self.post_message(TrainingEnded(str(run_dir), result["outcome"], checkpoint=result.get("checkpoint")))

    @on(TrainingStarted)
    def training_started(self, message: TrainingStarted) -> None:
        self.trainer = message.trainer
        self.refresh_bindings()
        self.say(f"training in {message.run_dir} · p pauses · x stops (a checkpoint is saved)", "success")

    @on(TrainingEnded)
    def training_ended(self, message: TrainingEnded) -> None:
        self.trainer, self.training_dir = None, None
        self.refresh_bindings()
        if message.error:
            if self.run_dir == Path(message.run_dir) and not self.run_dir.exists():
                self.detach()  # nothing was written: do not follow a run that never existed
            self.say(f"training failed: {message.error}", "error")
        elif message.outcome == "complete":
            self.say(f"nothing to resume: {message.run_dir} has finished its {message.epochs} epochs "
                     f"(fashion-train --resume --epochs N trains it further)", "warning")
        else:
            self.say(f"training {message.outcome}; last checkpoint {message.checkpoint} · g generates with it", "success")

    def action_pause(self) -> None:
        if self.trainer is None:
            self.say("no training of this app to pause (runs of other processes are only watched)", "warning")
            return
        if self.trainer.paused:
            self.trainer.unpause()
            self.say("training resumed · p pauses")
        else:
            self.trainer.pause()
            self.say("training paused · p resumes · x stops")
        if self.snapshot is not None:
            self.query_one("#run-title", Static).update(self._title(self.snapshot))

    def action_stop(self) -> None:
        if self.trainer is None:
            self.say("no training of this app to stop (stop other runs where they run, e.g. Ctrl+C)", "warning")
            return
        self.trainer.stop("stopped from the monitor")
        self.say("stopping: the trainer saves a checkpoint first…")

    def action_use_newest(self) -> None:
        if self.run_dir is None:
            self.say("no run attached: o follows one, t starts one", "warning")
            return
        newest = newest_checkpoint(self.run_dir)
        if newest is None:
            self.say(f"no checkpoint in {self.run_dir / 'checkpoints'} yet", "warning")
            return
        self.app.post_message(OpenCheckpoint(str(newest)))


def sample_layout(grid, width: int, height: int) -> tuple[list[Tile], list[Label], int, int]:
    """Every class of a training sample grid in `width` x `height` cells (row 0 is the title):
    each class a name above k items side by side, as many classes per row as fit. The largest item
    size that fits wins, then the most items per class; if even 7px does not fit, it scrolls.
    Returns the tiles, the name labels, the item size and k."""
    classes = len(next(iter(grid.thumbnails.values()), ()))

    def arrangement(size: int, per_class: int) -> tuple[int, int, int]:
        cell = max(per_class * (size + 1) - 1, SAMPLE_NAME_WIDTH)
        across = max(1, (width + SAMPLE_CLASS_GAP) // (cell + SAMPLE_CLASS_GAP))
        return cell, across, 1 + -(-classes // across) * ((size + 1) // 2 + 1)

    choices = [(size, k) for size in sorted(grid.thumbnails, reverse=True) for k in range(grid.per_class, 0, -1)]
    size, per_class = next(((size, k) for size, k in choices if arrangement(size, k)[2] <= height),
                           (min(grid.thumbnails), 1))
    cell, across, _ = arrangement(size, per_class)
    tiles, labels = [], []
    for row in range(classes):
        column, line = row % across, row // across
        x, y = column * (cell + SAMPLE_CLASS_GAP), 1 + line * ((size + 1) // 2 + 1)
        labels.append(Label(x, y, cell, SHORT_NAMES[row] if row < len(SHORT_NAMES) else f"row {row}", Style(dim=True)))
        for item in range(per_class):
            tiles.append(Tile(x + item * (size + 1), y + 1, size, size, grid.thumbnails[size][row][item]))
    return tiles, labels, size, per_class
