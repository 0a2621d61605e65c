"""The generate screen's side panel: ten classes with their shares, then the sampling settings.

Arrows move, space toggles, +/- and left/right nudge, and typing digits sets the focused row
(Enter applies, Esc drops). Every value is always visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from core.classes import NUM_CLASSES, SHORT_NAMES

from core.sampling.limits import (
    DEFAULT_GUIDANCE_INTERVAL, DEFAULT_STEPS, FRACTION_STEP, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_ITEMS, MAX_SEED, MAX_STEPS,
    MIN_STEPS, STUDENT, STUDENT_GUIDANCE_RANGE, STUDENT_STEPS, step_range,
)
from ..state import GUIDANCE_STEP, SHARE_STEP, GenerateState, InputError

SETTINGS = ("guidance", "mix", "sampler", "steps", "black", "seed", "items", "palette", "vary", "edit", "switch")
# the steering rows: the state's fraction each sets, and how to turn it on where it is off
FRACTIONS = {"vary": "variation_strength", "edit": "init_strength", "switch": "switch_at"}
TURN_ON = {"vary": "variations are off: select an item and press w",
           "edit": "no picture to edit from: E takes the selected item, O a picture file",
           "switch": "no class switch: t picks the classes asked for after it"}
ROWS = tuple(("class", i) for i in range(NUM_CLASSES)) + tuple(("setting", name) for name in SETTINGS)
BAR_CELLS = 4
EIGHTHS = " ▏▎▍▌▋▊▉█"
LOW_G, HIGH_G = (f"{g:g}" for g in GUIDANCE_RANGE)
TYPED = {"guidance": f"guidance ({LOW_G}-{HIGH_G})", "steps": f"steps ({MIN_STEPS}-{MAX_STEPS})",
         "black": f"black level (0-{MAX_BLACK_LEVEL})", "seed": "seed", "items": f"items (1-{MAX_ITEMS})",
         "vary": "variation strength (0-1)", "edit": "edit strength (0-1)", "switch": "switch point (0-1)"}

HINTS = {  # two lines of at most 20 cells each
    "class": "space pick  +/- 5%\ntype 0-100, Enter",
    "mix": "x or ←→: method\nhow classes combine",
    "guidance": f"[ ] ±{GUIDANCE_STEP:g}  type {LOW_G}-{HIGH_G}\n0 = none  a: +AG",
    "sampler": f"s: DPM++ DDIM DDPM\nDPM++: {DEFAULT_STEPS['dpm']} steps",
    "steps": f"←→ ±5  type {MIN_STEPS}-{MAX_STEPS}\nmore steps: slower",
    "black": f"←→ ±1  type 0-{MAX_BLACK_LEVEL}\n0 = raw model pixels",
    "seed": "r roll  l lock\n←→ ±1  type a seed",
    "items": f"n/N ×2 ÷2  ←→ ±1\ntype 1-{MAX_ITEMS}, Enter",
    "palette": "p or ←→: next one\ngrey = dataset look",
    "vary": f"w vary the item\n←→ ±{FRACTION_STEP:g}  space off",
    "edit": f"E item  O a file\n←→ ±{FRACTION_STEP:g}  space off",
    "switch": f"t edit 'then' mix\n←→ ±{FRACTION_STEP:g}  space off",
}
FEWEST, MOST = STUDENT_STEPS
STUDENT_HINTS = {  # the rows that differ where the student samples
    "guidance": f"[ ] ±{GUIDANCE_STEP:g}  type " + "-".join(f"{g:g}" for g in STUDENT_GUIDANCE_RANGE) + "\na, i: teacher only",
    "mix": "x: teacher only; the\nstudent composes",
    "sampler": f"s: back to DPM++\nstudent: {FEWEST}-{MOST} steps",
    "steps": f"←→ ±1  type {FEWEST}-{MOST}\n1 call per item each",
}
STUDENT_LOADED_HINT = f"s: DPM++ DDIM DDPM\n+ student: {FEWEST}-{MOST} steps"  # the sampler row's, a student loaded


def share_bar(percent: float) -> str:
    eighths = round(max(0.0, min(100.0, percent)) / 100 * BAR_CELLS * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(BAR_CELLS, "·")


def guidance_scope(interval) -> str:
    """'' for the default interval; ' all' when guidance acts at every step (i, or a recipe's); ' lo-hi' otherwise."""
    if interval is None:
        return " all"
    if tuple(interval) == DEFAULT_GUIDANCE_INTERVAL:
        return ""
    return f" {interval[0]}-{interval[1]}"


class ClassControls(Widget, can_focus=True):
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("space", "toggle", "Toggle", show=False),
        Binding("plus,equals_sign", "nudge(1)", "+5%", show=False),
        Binding("minus,underscore", "nudge(-1)", "-5%", show=False),
        Binding("left", "adjust(-1)", "Less", show=False),
        Binding("right", "adjust(1)", "More", show=False),
    ]

    @dataclass
    class Changed(Message):
        """A value changed (field names what), so the screen can refresh what depends on it."""

        field: str

    @dataclass
    class Problem(Message):
        text: str  # one line

    def __init__(self, state: GenerateState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self.cursor = 0
        self.typed: str | None = None  # digits being typed into the focused row
        self.top = 0  # the first line shown when the rows do not all fit (80x24 shows all but the steering rows)

    @property
    def row(self) -> tuple[str, object]:
        return ROWS[self.cursor]

    # ------------------------------------------------------------ rendering
    def render(self) -> Text:
        if self.state.editing_switch:
            lines = [Text.assemble((" THEN", "bold"), (f" from {self.state.switch_at:.0%} t:back", "dim"))]
        else:
            lines = [Text.assemble((" CLASSES", "bold"), ("   space +/-", "dim"))]
        for position, (kind, key) in enumerate(ROWS):
            if kind == "setting" and key == SETTINGS[0]:
                lines.append(Text.assemble((" SETTINGS", "bold"), ("  ←→ or type", "dim")))
            here = position == self.cursor
            pointer = "▸" if here and self.has_focus else ("›" if here else " ")
            row = self._class_row(key, here) if kind == "class" else self._setting_row(key, here)
            lines.append(Text.assemble((pointer, "bold"), (row, "reverse" if here and self.has_focus else "")))
        hint = self._hint()
        hints = [Text(" " + line, style="dim") for line in hint.splitlines()]  # right below the rows
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(self._window(lines) + hints)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def _hint(self) -> str:
        kind, key = self.row
        if kind == "class":
            return HINTS["class"]
        if self.state.sampler == STUDENT:
            return STUDENT_HINTS.get(key, HINTS[key])
        return STUDENT_LOADED_HINT if key == "sampler" and self.state.student_loaded else HINTS[key]

    def _window(self, lines: list[Text]) -> list[Text]:
        """The lines that fit above the hints, scrolled just enough to show the cursor's row."""
        room = self.size.height - 2
        if room <= 0 or len(lines) <= room:
            self.top = 0
            return lines
        cursor = 1 + self.cursor + (self.row[0] == "setting")  # below the CLASSES (and SETTINGS) heading
        self.top = min(max(self.top, cursor - room + 1), max(0, cursor - 1), len(lines) - room)  # a line of context above
        return lines[self.top:self.top + room]

    def _typed_or(self, here: bool, value: str, width: int) -> str:
        if here and self.typed is not None:
            return (self.typed + "▏").rjust(width)
        return value.rjust(width)

    def _class_row(self, index: int, here: bool) -> str:
        picked = index in self.state.picked
        box = "■" if picked else "□"
        name = SHORT_NAMES[index].ljust(8)
        if not picked:
            return f"{box} {name}" + " " * 10
        percent = self.state.share(index)
        if here and self.typed is not None:
            return f"{box} {name} {(self.typed + '▏'):>5} %"
        return f"{box} {name} {share_bar(percent)} {percent:>3.0f}%"

    def _setting_row(self, name: str, here: bool) -> str:
        state = self.state
        values = {
            "mix": state.mix,
            "guidance": f"{state.guidance:g}" + (" off" if state.guidance == 0 else guidance_scope(state.guidance_interval))
                        + ("+AG" if state.autoguidance else ""),
            "sampler": state.sampler.upper(),
            "steps": str(state.steps),
            "black": f"{state.black_level}/255" if state.black_level else "off",
            "seed": f"{state.seed} " + ("lock" if state.seed_locked else "roll"),
            "items": str(state.items),
            "palette": state.palette,
            "vary": f"{state.variation_strength:.2f}" if state.variation_seed is not None else "off",
            "edit": f"{state.init_strength:.2f}" if state.init_image is not None else "off",
            "switch": (f"{state.switch_at:.2f}" + (" ✎" if state.editing_switch else "")) if state.other_mix is not None else "off",
        }
        value = self._typed_or(here, values[name], 11)
        return f"{name:<9}{value}" if len(value) <= 11 else f"{name} {value}"  # a 10-digit seed: the name's padding gives way

    # ------------------------------------------------------------ keys
    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self._drop_typed()
        self.refresh()

    def _changed(self, field: str) -> None:
        self.refresh()
        self.post_message(self.Changed(field))

    def _problem(self, text: str) -> None:
        self.refresh()
        self.post_message(self.Problem(text))

    def _drop_typed(self) -> None:
        if self.typed is not None:
            self.typed = None
            self.refresh()

    def action_move(self, delta: int) -> None:
        self._drop_typed()
        self.cursor = (self.cursor + delta) % len(ROWS)
        self.refresh()

    def move_to_setting(self, name: str) -> None:
        self._drop_typed()
        self.cursor = ROWS.index(("setting", name))
        self.refresh()

    def action_toggle(self) -> None:
        self._drop_typed()
        kind, key = self.row
        if kind == "class":
            self.state.toggle(key)
            self._changed("classes")
        elif key == "seed":
            self.state.seed_locked = not self.state.seed_locked
            self._changed("seed")
        elif key in ("sampler", "palette", "mix"):
            self.action_adjust(1)
        elif key in FRACTIONS:
            if not self._steering_on(key):
                self._problem(TURN_ON[key])
                return
            if key == "vary":
                self.state.variation_seed = None
            elif key == "edit":
                self.state.init_image = None
            else:
                self.state.clear_switch()
            self._changed(key)

    def _steering_on(self, key: str) -> bool:
        state = self.state
        return {"vary": state.variation_seed is not None, "edit": state.init_image is not None,
                "switch": state.other_mix is not None}[key]

    def action_nudge(self, direction: int) -> None:
        kind, key = self.row
        if kind != "class":
            self.action_adjust(direction)
            return
        self._drop_typed()
        try:
            self.state.nudge(key, direction * SHARE_STEP)
        except InputError as error:
            self._problem(str(error))
            return
        self._changed("classes")

    def action_adjust(self, direction: int) -> None:
        self._drop_typed()
        kind, key = self.row
        if kind == "class":
            self.action_nudge(direction)
            return
        state = self.state
        try:
            if key == "guidance":
                state.nudge_guidance(direction * GUIDANCE_STEP)
            elif key == "sampler":
                state.toggle_sampler(direction)
            elif key == "mix":
                state.cycle_mix(direction)
            elif key == "steps":
                fewest, most = step_range(state.sampler)
                state.set_steps(min(most, max(fewest, state.steps + direction * (5 if state.steps >= 10 else 1))))
            elif key == "black":
                state.set_black_level(min(MAX_BLACK_LEVEL, max(0, state.black_level + direction)))
            elif key == "seed":
                state.set_seed(min(MAX_SEED, max(0, state.seed + direction)))
            elif key == "items":
                state.set_items(min(MAX_ITEMS, max(1, state.items + direction)))
            elif key == "palette":
                self.post_message(self.Changed("palette-next" if direction > 0 else "palette-previous"))
                return
            elif key in FRACTIONS:
                if not self._steering_on(key):
                    raise InputError(TURN_ON[key])
                value = getattr(state, FRACTIONS[key]) + direction * FRACTION_STEP
                state.set_fraction(FRACTIONS[key], min(1.0, max(0.0, round(value, 3))))
        except InputError as error:
            self._problem(str(error))
            return
        self._changed(key)

    def on_key(self, event: events.Key) -> None:
        """Typing: digits (and '.' for guidance) go to a buffer; Enter applies it, Esc drops it."""
        kind, key = self.row
        typable = kind == "class" or key in TYPED
        character = event.character or ""
        if typable and (character.isdigit() or (character == "." and (kind == "class" or key == "guidance" or key in FRACTIONS))):
            if kind == "class" and key not in self.state.picked:
                self._problem(f"{SHORT_NAMES[key]} is not picked; press space to pick it first")
            else:
                self.typed = ((self.typed or "") + character)[:10]
                self.refresh()
            event.stop()
            event.prevent_default()
        elif self.typed is not None and event.key == "backspace":
            self.typed = self.typed[:-1] or None
            self.refresh()
            event.stop()
        elif self.typed is not None and event.key == "enter":
            self.apply_typed()
            event.stop()
            event.prevent_default()
        elif self.typed is not None and event.key == "escape":
            self._drop_typed()
            event.stop()
            event.prevent_default()

    def apply_typed(self) -> None:
        typed, self.typed = self.typed, None
        kind, key = self.row
        try:
            value = float(typed)
        except (TypeError, ValueError):
            self._problem(f"{typed!r} is not a number")
            return
        try:
            if kind == "class":
                self.state.set_share(key, value)
                key = "classes"
            elif key == "guidance":
                self.state.set_guidance(value)
            elif key in FRACTIONS:
                if not self._steering_on(key):
                    raise InputError(TURN_ON[key])
                self.state.set_fraction(FRACTIONS[key], value)
            else:
                if value != int(value):
                    what = f"steps ({'-'.join(map(str, step_range(self.state.sampler)))})" if key == "steps" else TYPED[key]
                    raise InputError(f"{what} must be a whole number, not {typed}")
                {"steps": self.state.set_steps, "black": self.state.set_black_level, "seed": self.state.set_seed, "items": self.state.set_items}[key](int(value))
        except InputError as error:
            self._problem(str(error))
            return
        self._changed(key)
