"""The Textual app: a thin shell holding the options, three modes (generate, monitor, help) and
the keys that work everywhere. Nothing here imports torch: the first frame comes first.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field

from textual import events, on
from textual.app import App
from textual.binding import Binding

from core.model.config import DEFAULT_PRESET

from .commands import ActionsProvider
from .messages import OpenCheckpoint
from .screens.generate import GenerateScreen
from .screens.help import HelpScreen
from .screens.monitor import MonitorScreen
from core.sampling.limits import DEFAULT_ITEMS
from .widgets.too_small import too_small


@dataclass
class AppOptions:
    checkpoint: str | None = None  # None: the shipped model
    run_dir: str | None = None  # open the monitor on this run directory
    device: str = "cpu"
    precision: str = "auto"  # "auto", "bf16" or "fp32" for the app's own requests (a recipe keeps its own)
    export_dir: str = "exports"
    from_png: str | None = None  # reproduce this PNG's recipe at start
    data_dir: str | None = None  # Fashion-MNIST for trainings started from the monitor
    train_preset: str = DEFAULT_PRESET  # trainings started from the monitor (--train-preset)
    train_overrides: dict = field(default_factory=dict)  # extra TrainConfig fields (--train-epochs)
    runs_root: str = "runs"  # trainings started from the monitor go to runs_root/tui-YYYYmmdd-HHMMSS; compare lists it
    tensorboard: str | None = None  # TensorBoard event files of those trainings: None off, "" run_dir/tb, else DIR/run name
    # Not on the command line: starting values (tests use small ones)
    sampler: str | None = None  # None: the student where the model has one beside it, else DEFAULT_SAMPLER
    steps: int | None = None  # None: the sampler's default
    items: int = DEFAULT_ITEMS

    @classmethod
    def from_args(cls, args) -> "AppOptions":
        return cls(checkpoint=args.checkpoint, run_dir=args.run_dir, device=args.device, precision=args.precision,
                   export_dir=args.export_dir,
                   from_png=args.from_png, data_dir=getattr(args, "data_dir", None),
                   train_preset=getattr(args, "train_preset", DEFAULT_PRESET),
                   train_overrides={"epochs": args.train_epochs} if getattr(args, "train_epochs", None) else {},
                   runs_root=getattr(args, "runs_root", "runs"), tensorboard=getattr(args, "tensorboard", None))


class FashionApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "fashion-tui"
    MODES = {"generate": GenerateScreen, "monitor": MonitorScreen, "help": HelpScreen}
    DEFAULT_MODE = "generate"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("m", "toggle_monitor", "Monitor", tooltip="switch between the generate and monitor screens"),
    ]

    def __init__(self, options: AppOptions | None = None) -> None:
        super().__init__()
        self.options = options or AppOptions()
        self.previous_mode = "generate"

    async def on_mount(self) -> None:
        self._check_size()
        if self.options.run_dir:
            await self.switch_mode("monitor")

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)  # runs before App's own handler updates self.size

    def _check_size(self, size=None) -> None:
        self.set_class(too_small(*(size or self.size)), "-too-small")

    def action_help(self) -> None:
        if self.current_mode == "help":
            self.action_close_help()
            return
        self.previous_mode = self.current_mode
        self.switch_mode("help")

    def action_close_help(self) -> None:
        self.switch_mode(self.previous_mode)

    def action_toggle_monitor(self) -> None:
        self.switch_mode("generate" if self.current_mode == "monitor" else "monitor")

    async def run_in_mode(self, mode: str, action: str) -> None:
        """Run a screen's action from the command palette, switching to its mode first."""
        if mode == "app":
            await self.run_action(action)
            return
        if self.current_mode != mode:
            await self.switch_mode(mode)
        await self.run_action(action, self.screen_stack[0])

    @on(OpenCheckpoint)
    async def open_checkpoint(self, message: OpenCheckpoint) -> None:
        await self.switch_mode("generate")
        screen = self.screen_stack[0]
        screen.load_model(message.path)
        screen.say(f"loading {message.path} from the monitor…")


def _import_torch_early() -> None:
    """The model worker's imports, started before the app: torch takes ~1 s to import, most of it
    while the first frame waits on the terminal anyway, so the model is ready ~0.3 s sooner."""
    def work() -> None:
        try:
            importlib.import_module("tui.jobs")  # torch and core, for the model worker
        except Exception:  # the model worker imports it again and reports what went wrong
            pass

    threading.Thread(target=work, name="import-torch", daemon=True).start()


def run_app(args) -> int:
    _import_torch_early()
    FashionApp(AppOptions.from_args(args)).run()
    return 0
