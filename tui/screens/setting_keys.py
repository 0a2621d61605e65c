"""The generate screen's setting keys: guidance, its interval, the mix method, the sampler, seed,
items, palette, zoom and live mode. Each changes GenerateState, moves the side panel's cursor to
the row it changed and, in live mode, starts a new run.

A mixin of GenerateScreen: the bindings stay in GenerateScreen.BINDINGS, in the order the footer
and the help screen list them.
"""

from __future__ import annotations

from core.classes import DEFAULT_MIX, MIX_DESCRIPTIONS

from ..pixels import GREY_PALETTE
from core.sampling.limits import DEFAULT_GUIDANCE_INTERVAL, STUDENT, describe_interval
from ..state import GUIDANCE_STEP, InputError

PALETTE_NAMES = ("grey", "inverted", "magma", "viridis", "ice")  # core.images.PALETTES, checked by a test


def off_the_student(autoguidance: float, interval, mix: str) -> str:
    """The teacher's settings the student refuses, where they are not what it learned: 'autoguidance, mix'."""
    return ", ".join(name for name, off in (("autoguidance", autoguidance), ("interval", interval != DEFAULT_GUIDANCE_INTERVAL),
                                            ("mix", mix != DEFAULT_MIX)) if off)


class SettingKeys:
    def action_live(self, on: bool) -> None:
        self.live = on
        self.refresh_bindings()
        if on:
            self.say("live: every change generates at once (v turns it off)", "success")
            self._live_change()
        else:
            self.say("live off: g generates")

    def _setting(self, change, field: str) -> bool:
        """Run change() on the state and show its row; an InputError (one line: a value out of range,
        or what the student refuses) is said instead and nothing changes."""
        try:
            change()
        except InputError as error:
            self.say(str(error), "warning")
            return False
        self._after_setting(field)
        return True

    def action_guidance(self, direction: int) -> None:
        self._setting(lambda: self.state.nudge_guidance(direction * GUIDANCE_STEP), "guidance")  # clamps to the range

    def action_guidance_scope(self) -> None:
        if self._setting(self.state.toggle_guidance_scope, "guidance"):
            interval = self.state.guidance_interval
            self.say("guidance at every step (classic CFG)" if interval is None
                     else f"guidance at steps {describe_interval(interval)} only (default)")

    def action_autoguidance(self) -> None:
        if self._setting(self._toggle_autoguidance, "guidance"):
            self.say(f"autoguidance {self.state.autoguidance:g} at g {self.state.guidance:g}: closer to real items (a: off)"
                     if self.state.autoguidance else "autoguidance off: classifier-free guidance alone")

    def _toggle_autoguidance(self) -> None:
        self.state.teacher_only("autoguidance")
        if not self.state.autoguidance and self.generator is not None and self.generator.guide is None:
            name = self.generator.path.name if self.generator.path else "this model"
            raise InputError(f"no guide model beside {name}: autoguidance stays off")
        self.state.toggle_autoguidance()

    def action_mix(self) -> None:
        if self._setting(self.state.cycle_mix, "mix"):
            self.say(f"mix {self.state.mix}: {MIX_DESCRIPTIONS[self.state.mix]}")

    def action_sampler(self) -> None:
        state = self.state
        guidance, leaving = state.guidance, state.sampler
        state.toggle_sampler()
        self._after_setting("sampler")
        if state.sampler == STUDENT:
            held = f" · g held to {state.guidance:g}" if guidance > state.guidance_range()[1] else ""
            kept = off_the_student(*state.teacher_settings)
            self.say(f"student: {state.steps} calls/item{held} · " + (f"{kept} back with s" if kept else "s: back to the teacher"))
        elif leaving == STUDENT and (back := off_the_student(state.autoguidance, state.guidance_interval, state.mix)):
            self.say(f"{state.sampler.upper()}: the teacher's {back} back")

    def action_reroll(self) -> None:
        self.state.reroll_seed()
        self._after_setting("seed")
        rolled = f"new variation seed {self.state.variation_seed}" if self.state.variation_seed is not None else f"new seed {self.state.seed}"
        self.say(rolled + ("" if self.state.seed_locked else " (unlocked: re-rolls every time)"))

    def action_lock_seed(self) -> None:
        self.state.seed_locked = not self.state.seed_locked
        self._after_setting("seed")
        self.say("seed locked: g repeats the same items" if self.state.seed_locked else "seed unlocked: every g rolls a new seed")

    def action_items(self, direction: int) -> None:
        self.state.step_items(direction > 0)
        self._after_setting("items")

    def action_palette(self, direction: int = 1) -> None:
        names = [name for name in PALETTE_NAMES if name in self.palettes]
        if len(names) == 1:
            self.say("colour palettes are still loading; grey for now", "warning")
        position = names.index(self.state.palette) if self.state.palette in names else 0
        self.state.palette = names[(position + direction) % len(names)]
        self._apply_palette()
        self._after_setting("palette")

    def _apply_palette(self) -> None:
        self.grid.set_palette(self.palettes.get(self.state.palette, GREY_PALETTE))

    def action_zoom(self) -> None:
        if self.grid.count == 0:
            self.say("nothing to zoom yet: generate first (g)", "warning")
            return
        zoomed = not self.grid.zoomed
        self.set_class(zoomed, "-zoomed")
        self.grid.set_zoom(zoomed)
        if zoomed:
            self.grid.focus()
        self.refresh_bindings()
