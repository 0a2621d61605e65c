"""The generate screen (the default mode): pick and mix classes, set guidance, watch items denoise.

Model loading and sampling run in thread workers that post tui.messages (exports and PNG recipes:
tui.screens.recipes); `tui.jobs` (torch) is imported inside those workers only.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from core.classes import MIX_METHODS

from ..messages import ModelFailed, ModelLoaded, PalettesLoaded, SampleDone, SampleProgress, SampleStopped
from ..pixels import GREY_PALETTE
from core.sampling.limits import (
    AUTOGUIDANCE_ON, AUTOGUIDED_GUIDANCE, DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SAMPLER, DEFAULT_STEPS, GUIDANCE_RANGE, STUDENT,
    STUDENT_GUIDANCE_RANGE, STUDENT_STEPS, describe_interval,
)
from ..state import GenerateState, InputError, item_captions
from ..widgets.controls import ClassControls
from ..widgets.item_grid import ItemGrid
from ..widgets.status_line import StatusLine
from ..widgets.too_small import TooSmall
from .recipes import SHIPPED_MODEL, ExportsAndRecipes, Pending, Result
from .setting_keys import SettingKeys
from .steering import SteeringKeys

# Previews while sampling. The sampler runs on every core, and a preview costs it more than its
# paint: the screen's repaint, then the terminal output that Textual's writer thread builds, each
# need the GIL and a core that a step's threads were using (16 items at the defaults on 2 cores,
# bench/tui_latency.py: previews every 0.1 s made the app 1.46x a plain process's time, none
# 1.04x). So a run shows its first preview only once it has gone on for FIRST_PREVIEW seconds (a
# run that ends sooner shows its items at once), then one every PREVIEW_INTERVAL at most; the
# worker waits while each is painted, and spaces them so that painting takes at most
# PREVIEW_SHARE of the run, so a slow terminal gets fewer previews rather than a slower sampler.
# The sampling threads keep the UI's priority: niced, every repaint and terminal write preempted
# them mid-step (1.5x a plain process's time against 1.03x), while keys repaint within 35-55 ms
# (p90) either way.
FIRST_PREVIEW = 0.3  # seconds into a run before its first preview
PREVIEW_INTERVAL = 0.25  # seconds between previews at the least
PREVIEW_SHARE = 0.1  # the most of a run's time that painting previews may take
PAINT_TIMEOUT = 0.25  # seconds the sampler waits for a paint at most (a screen out of view never paints)
STEP_YIELD = 0.001  # seconds the sampler sleeps between steps, so the UI thread gets the GIL
START_YIELD = 0.02  # seconds a new run waits before its first step (counted in the time it reports)
INFO_ROWS = 2  # the info line's max-height in app.tcss


class GenerateScreen(SettingKeys, SteeringKeys, ExportsAndRecipes, Screen):
    AUTO_FOCUS = "#controls"
    BINDINGS = [
        Binding("g,enter", "generate", "Generate", tooltip="denoise items from the picked classes, step by step"),
        # The footer shows only what fits beside the app's keys at 80 columns; the status line offers z
        # and b when they apply, and ? lists every key.
        Binding("escape", "cancel", "Cancel", tooltip="stop the generation"),
        Binding("escape", "leave_zoom", "Back", tooltip="leave the zoomed item or its film"),
        Binding("e", "export", "Export", tooltip="write the grid and the selected item as 8x PNGs carrying their recipe"),
        Binding("b", "blend", "Blend", show=False, tooltip="with two classes picked: a strip from 100% of the first "
                                                           "to 100% of the second, all from one seed"),
        Binding("z", "zoom", "Zoom", show=False, tooltip="the selected item alone, as large as fits (1.5x at 80x24)"),
        Binding("p", "palette", "Palette", show=False, tooltip="next palette: grey, inverted, magma, viridis, ice"),
        Binding("left_square_bracket", "guidance(-1)", "Guidance -0.5", show=False, tooltip="0 = no guidance"),
        Binding("right_square_bracket", "guidance(1)", "Guidance +0.5", show=False,
                tooltip=f"up to {GUIDANCE_RANGE[1]:g} ({STUDENT_GUIDANCE_RANGE[1]:g} with the student)"),
        Binding("i", "guidance_scope", "Guidance interval", show=False,
                tooltip=f"guide only steps {describe_interval(DEFAULT_GUIDANCE_INTERVAL)} (default: varied items) "
                        "or every step (classic CFG: closer to prototypes)"),
        Binding("a", "autoguidance", "Autoguidance", show=False,
                tooltip=f"on/off: beside guidance, push items away from a weaker guide model's errors (w {AUTOGUIDANCE_ON:g}; "
                        f"g at its default moves to {AUTOGUIDED_GUIDANCE:g}: the items closest to real ones)"),
        Binding("x", "mix", "Mix method", show=False,
                tooltip="how picked classes combine: " + ", ".join(MIX_METHODS) + " (compose: crisp; average: the original, faint at 50/50)"),
        Binding("s", "sampler", "Sampler", show=False,
                tooltip=f"sampler: DPM-Solver++ (deterministic, {DEFAULT_STEPS['dpm']} steps), DDIM (deterministic, "
                        f"{DEFAULT_STEPS['ddim']}), DDPM (fresh noise each step, {DEFAULT_STEPS['ddpm']}) and, where a "
                        f"student is loaded (NAME-student.pt), the student ({STUDENT_STEPS[0]}-{STUDENT_STEPS[1]} steps, "
                        f"default {DEFAULT_STEPS[STUDENT]}, one call per item each; the app starts on it; guidance "
                        "folded in, so a, i and x stay with the teacher's samplers)"),
        Binding("v", "live(True)", "Live: off", tooltip="live: every change of a share or setting generates at once"),
        Binding("v", "live(False)", "Live: ON", tooltip="live: every change generates at once (v turns it off)"),
        Binding("r", "reroll", "Re-roll seed", show=False, tooltip="a new random seed (item i uses seed + i)"),
        Binding("l", "lock_seed", "Lock/unlock seed", show=False,
                tooltip="locked: g repeats the same items; unlocked: every g rolls a new seed"),
        Binding("n", "items(1)", "More items", show=False, tooltip="1, 2, 4 … 64 (type a number on the items row)"),
        Binding("N", "items(-1)", "Fewer items", show=False),
        Binding("o", "open_png", "Open PNG recipe", show=False,
                tooltip="re-open an exported PNG's recipe and reproduce the same pixels"),
        Binding("c", "open_checkpoint", "Open checkpoint", show=False, tooltip="load another generator checkpoint"),
        Binding("w", "vary", "Variations", show=False,
                tooltip="of the selected item: its noise slerped with another seed's, by the vary row"),
        Binding("E", "edit_item", "Edit the item", show=False,
                tooltip="redraw the selected item as the picked classes, from the edit row's strength"),
        Binding("O", "edit_file", "Edit a picture", show=False,
                tooltip="edit from a file: an exported item, or any PNG, JPEG, ... made 28x28 grey"),
        Binding("t", "switch", "Class switch", show=False,
                tooltip="pick the classes asked for from the switch row's point on (t again: the first mix)"),
        Binding("f", "film", "Film", show=False,
                tooltip="the selected item's denoising, x_t and predicted x_0 per step: ←→ steps, e exports"),
        Binding("d", "dense", "Dense grid", show=False, tooltip="items at half scale, area-averaged: 8 or more at 80x24"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state = GenerateState()
        self.generator = None  # core.checkpoint.Generator once loaded
        self.precision = "fp32"  # the loaded model's sampling precision, "bf16" or "fp32" (jobs.open_generator)
        self.model_loading: str | None = None  # path being loaded
        self.model_error: str | None = None
        self.palettes: dict[str, list] = {"grey": GREY_PALETTE}
        self.sampling: Worker | None = None
        self.job = 0
        self.result: Result | None = None
        self.pending: Pending | None = None
        self.student_by_default = False  # on_mount: start on the student once a model with one loads
        self.select_after: int | None = None
        self.recipe_checkpoint_tried = False
        self.captions: list[str] = []
        self.sampling_generator = None
        self.live = False  # every change generates at once
        self.blend_pair: tuple[int, int] | None = None  # the strip live mode re-renders after b
        self.info_width = 0  # the info line's width when last laid out

    def compose(self) -> ComposeResult:
        with Horizontal(id="generate-body", classes="layout"):
            yield ClassControls(self.state, id="controls")
            with Vertical(id="main"):
                yield Static("", id="info", markup=False)
                yield ItemGrid(id="grid")
        yield StatusLine(id="status", classes="layout")
        yield TooSmall()
        yield Footer(compact=True)

    @property
    def grid(self) -> ItemGrid:
        return self.query_one(ItemGrid)

    @property
    def controls(self) -> ClassControls:
        return self.query_one(ClassControls)

    def say(self, message: str, severity: str = "info", background: bool = False) -> None:
        self.query_one(StatusLine).say(message, severity, background)
        if severity in ("error", "warning"):
            self.app.notify(message, severity=severity, timeout=6, markup=False)

    # ------------------------------------------------------------ start-up
    def on_mount(self) -> None:
        options = self.app.options
        sampler = options.sampler or DEFAULT_SAMPLER
        self.state.sampler = sampler
        self.state.steps = options.steps or DEFAULT_STEPS[sampler]
        self.state.guidance = DEFAULT_GUIDANCE[sampler]
        # no sampler asked for (nor a PNG's): the first model with a student starts on it, 2 calls an item against 28
        self.student_by_default = options.sampler is None and not options.from_png
        self.state.items = options.items
        if not self.state.picked:  # a newcomer's first g generates: the class under the cursor is picked
            self.state.toggle(self.controls.row[1])
        self.controls.refresh()
        self._update_info()
        self.say("loading model… (g generates, arrows move, space picks classes, ? help)", background=True)
        self.call_after_refresh(self._start_background_work)

    def _start_background_work(self) -> None:
        self.load_palettes()
        self.load_model(self.app.options.checkpoint)
        if self.app.options.from_png:
            self.open_recipe(self.app.options.from_png)

    @work(thread=True, group="palettes", exit_on_error=False)
    def load_palettes(self) -> None:
        from .. import jobs

        self.post_message(PalettesLoaded(jobs.palette_tables()))

    @on(PalettesLoaded)
    def palettes_loaded(self, message: PalettesLoaded) -> None:
        self.palettes = message.tables
        self._apply_palette()

    def load_model(self, path: str | None) -> None:
        self.model_loading = path or SHIPPED_MODEL
        self._update_info()
        self._load_model(path)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def _load_model(self, path: str | None) -> None:
        from .. import jobs

        started = time.monotonic()
        try:
            generator, precision, why = jobs.open_generator(path, self.app.options.device, self.app.options.precision)
        except Exception as error:  # CheckpointError, ValueError (device), OSError: one line each
            self.post_message(ModelFailed(str(path or SHIPPED_MODEL), jobs.one_line(error)))
            return
        self.post_message(ModelLoaded(generator, time.monotonic() - started, precision, why))

    @on(ModelLoaded)
    def model_loaded(self, message: ModelLoaded) -> None:
        self.generator, self.model_loading, self.model_error = message.generator, None, None
        self.precision = message.precision
        self.state.student_loaded = message.generator.student is not None
        if self.student_by_default and self.state.student_loaded and self.state.sampler == DEFAULT_SAMPLER:
            self.state.use_sampler(STUDENT)
        self.student_by_default = False  # later models keep the sampler in use
        self.controls.refresh()
        self._update_info()
        if not self.query_one(StatusLine).showing_problem():  # e.g. a bad --from-png: keep that in view
            precision = message.precision_reason if message.precision_reason != "asked for" else message.precision
            self.say(f"model ready in {message.seconds:.1f} s ({precision}) · g generates", "success")
        pending, self.pending = self.pending, None
        if pending is not None:
            self._run_pending(pending)

    @on(ModelFailed)
    def model_failed(self, message: ModelFailed) -> None:
        self.model_loading, self.model_error = None, message.error
        self._update_info()
        if self.generator is not None:  # a failed switch: the model in use stays
            name = self.generator.path.name if self.generator.path else "the current model"
            self.say(f"cannot load the model: {message.error} (still using {name}; c opens another)", "error")
        else:
            self.say(f"cannot load the model: {message.error} (c opens another checkpoint)", "error")

    def _update_info(self) -> None:
        """The model, the mix and the steering in at most INFO_ROWS rows: the model's step and device,
        where the steering starts from, then the model's name are left out until it fits."""
        model = name = "no model loaded (c opens a checkpoint)"
        if self.model_loading:
            shown = self.model_loading if self.model_loading == SHIPPED_MODEL else Path(self.model_loading).name
            model = name = f"loading model… {shown}"
        elif self.generator is not None:
            name = self.generator.path.name if self.generator.path else "model"
            device = next(self.generator.denoiser.parameters()).device
            # who draws: the model at its training step, or its student (whose calls the steps row's hint gives)
            drawn = "student" if self.state.sampler == STUDENT and self.generator.student else f"step {self.generator.info.get('step', '?')}"
            model = f"{name} ({drawn}, {device} {self.precision})"
        mix = self.state.describe_first() + (f" ({self.state.mix})" if len(self.state.picked) > 1 else "")
        steering, brief = self.state.describe_steering(), self.state.describe_steering(brief=True)
        forms = [" · ".join(filter(None, parts)) for parts in ((model, mix, steering), (name, mix, steering),
                                                                 (name, mix, brief), (mix, brief))]
        line = self.query_one("#info", Static)
        self.info_width = line.content_size.width or self.info_width  # 0 while hidden (zoomed) or not laid out
        fitting = (text for text in forms if not self.info_width
                   or len(Text(text).wrap(self.app.console, self.info_width)) <= INFO_ROWS)
        line.update(next(fitting, forms[-1]))

    def on_resize(self) -> None:
        self.call_after_refresh(self._update_info)  # once the info line has its new width

    # ------------------------------------------------------------ controls
    @on(ClassControls.Changed)
    def controls_changed(self, message: ClassControls.Changed) -> None:
        if message.field.startswith("palette"):
            self.action_palette(-1 if message.field == "palette-previous" else 1)
            return
        self._update_info()
        self._live_change()

    @on(ClassControls.Problem)
    def controls_problem(self, message: ClassControls.Problem) -> None:
        self.say(message.text, "warning")

    def _after_setting(self, field: str) -> None:
        self.controls.move_to_setting(field)
        self._update_info()
        if field != "palette":
            self._live_change()

    def _live_change(self) -> None:
        """In live mode a change generates at once, cancelling the run in flight (the same seed: a
        sweep shows the same items change); a blend strip stays a strip while its two classes do."""
        if not self.live or self.generator is None:
            return
        blend = self.blend_pair if self.blend_pair is not None and self.state.picked == list(self.blend_pair) else None
        self.generate(blend=blend, live=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "live":
            return parameters[0] != self.live  # one of the two v bindings: the footer shows the state
        if action == "cancel":
            return self.sampling is not None
        if action == "leave_zoom":  # Esc stops a run first, then leaves the zoom
            return self.sampling is None and bool(self.query(ItemGrid)) and self.grid.zoomed
        return True

    def action_cancel(self) -> None:
        if self.sampling is not None:
            self.sampling.cancel()
            self.say("cancelling…")

    def action_leave_zoom(self) -> None:
        if self.grid.zoomed:
            self.action_zoom()

    # ------------------------------------------------------------ generation
    def action_generate(self) -> None:
        self.blend_pair = None
        self.generate()

    def action_blend(self) -> None:
        try:
            pair = self.state.blend_pair()
        except InputError as error:
            self.say(f"{error}: pick two with space, then b renders a strip from the first to the second", "warning")
            return
        self.blend_pair = pair
        self.generate(blend=pair)

    def generate(self, request: Any = None, blend: tuple[int, int] | None = None, select: int | None = None,
                 live: bool = False) -> None:
        """Start sampling (cancelling a run in flight). live: a change in live mode, which keeps the
        seed even when unlocked and keeps the old items on screen until the first preview."""
        if self.generator is None:
            if self.model_loading:
                self.pending = Pending(request, blend, select=select)
                self.say("the model is still loading; generating as soon as it is ready")
            else:
                self.say(f"no model loaded: {self.model_error or 'open one with c'}", "error")
            return
        from core.sampling.request import SampleRequestError, check_guide, check_student  # torch: loaded with the model

        from .. import jobs

        try:
            if request is None:
                fields = self.state.request_fields()  # checked before anything changes
                if not self.state.seed_locked and not live:
                    self.state.reroll_seed()  # the seed, or the variation seed while varying
                    fields = self.state.request_fields()
                    self.controls.refresh()
                request = jobs.build_request({**fields, "precision": self.precision}, blend)
            check_student(self.generator, request.sampler)  # the models a request needs, before any run starts
            check_guide(self.generator, request.autoguidance)
        except (InputError, SampleRequestError) as error:
            self.say(str(error), "warning" if not live else "info")
            return
        if self.sampling is not None:
            self.sampling.cancel()
        if self.grid.film is not None:  # the film was of the items this run replaces
            self.action_zoom()
        self.workers.cancel_group(self, "film")  # so is a film still recording (it holds the sampler)
        self.job += 1
        self.result = None
        self.select_after = select
        self.captions = item_captions(request)
        if live and self.grid.count == request.n:
            self.grid.show(self.grid.pixels, request.n, self.captions)  # the old items stay until the first preview
        else:
            self.grid.clear(f"denoising {request.n} items…")
        self.sampling = self._sample(self.job, self.generator, request)
        self.sampling_generator = self.generator
        self.refresh_bindings()
        self.say(f"denoising: step 0/{request.resolved_steps()} · Esc cancels")

    @work(thread=True, exclusive=True, group="sample", exit_on_error=False)
    def _sample(self, job: int, generator: Any, request: Any) -> None:
        from .. import jobs

        worker = get_current_worker()
        started = time.monotonic()
        last_post = started + FIRST_PREVIEW - PREVIEW_INTERVAL
        time.sleep(START_YIELD)  # the key that started this run repaints before sampling takes the GIL
        index, total = 0, request.resolved_steps()
        gap, painted = PREVIEW_INTERVAL, threading.Event()
        steps = jobs.steps(generator, request, cancelled=lambda: worker.is_cancelled)
        try:
            for step in steps:
                index, total = step.index, step.total
                if worker.is_cancelled:
                    self.post_message(SampleStopped(job, index, total))
                    return
                now = time.monotonic()
                if step.done:
                    pixels = jobs.grey_bytes(step.x)
                    self.post_message(SampleDone(job, request, step.x, pixels, now - started))
                    return
                if now - last_post >= gap:
                    painted.clear()
                    self.post_message(SampleProgress(job, index, total, jobs.grey_bytes(step.x), request.n,
                                                     now - started, painted))
                    painted.wait(PAINT_TIMEOUT)
                    last_post = time.monotonic()
                    gap = max(PREVIEW_INTERVAL, (last_post - now) / PREVIEW_SHARE)
                else:
                    time.sleep(STEP_YIELD)  # hand the GIL to the UI thread between steps
            if worker.is_cancelled:  # cancelled while waiting for the sampler: it never started
                self.post_message(SampleStopped(job, index, total))
        except Exception as error:
            self.post_message(SampleStopped(job, index, total, jobs.one_line(error)))
        finally:
            steps.close()

    @on(SampleProgress)
    def sample_progress(self, message: SampleProgress) -> None:
        if message.job != self.job:
            if message.painted is not None:
                message.painted.set()
            return
        if message.painted is not None:  # the sampler waits until the preview is on the terminal
            if self.is_current:
                self.call_after_refresh(message.painted.set)
            else:
                message.painted.set()
        first = self.grid.count != message.n
        self.grid.show(message.pixels, message.n, self.captions if first else None)
        filled = round(20 * message.index / message.total)
        self.say(f"denoising: step {message.index}/{message.total} ▕{'█' * filled}{'░' * (20 - filled)}▏ "
                 f"{message.seconds:.1f} s · Esc cancels")

    @on(SampleDone)
    def sample_done(self, message: SampleDone) -> None:
        if message.job != self.job:
            return
        self.sampling = None
        self.result = Result(message.request, message.images, self.sampling_generator,
                             bool(message.request.per_item_weights))
        self.grid.show(message.pixels, message.request.n, self.captions)
        if self.select_after is not None and self.select_after < message.request.n:
            self.grid.select(self.select_after)
        self.refresh_bindings()
        self.say(f"{message.request.n} items in {message.seconds:.2f} s (seed {message.request.seed}) · "
                 "e exports · z zooms · Tab moves to the items", "success")

    @on(SampleStopped)
    def sample_stopped(self, message: SampleStopped) -> None:
        if message.job != self.job:
            return
        self.sampling = None
        self.refresh_bindings()
        if message.error:
            self.say(f"sampling failed at step {message.index}/{message.total}: {message.error}", "error")
        else:
            self.say(f"cancelled at step {message.index}/{message.total} (a partial preview is shown; g starts again)",
                     "warning")
