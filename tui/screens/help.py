"""The help mode: every key, read from the bindings themselves so it cannot go stale."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.sampling.limits import (
    AUTOGUIDED_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_STEPS, STUDENT, STUDENT_GUIDANCE_RANGE, STUDENT_STEPS,
    describe_interval,
)
from ..widgets.controls import ClassControls
from .chart_keys import CHART_BINDINGS
from .compare import CompareScreen
from ..widgets.item_grid import ItemGrid
from ..widgets.too_small import TooSmall

TYPING = [
    ("0-9 .", "type a value for the focused row (share %, guidance, steps, seed, items, a strength or switch point 0-1)"),
    ("enter", "apply what was typed (otherwise: generate)"),
    ("backspace", "edit what was typed; esc drops it"),
]

ABOUT = (
    "Guidance g is classifier-free guidance: the model predicts (1+g)·cond − g·uncond, so g = 0 means no "
    "guidance and larger g follows the chosen classes harder (default 1.75 with DPM-Solver++, 2 with DDIM and DDPM). "
    f"It acts on diffusion steps {describe_interval(DEFAULT_GUIDANCE_INTERVAL)}; the noisier steps run unguided, which keeps items "
    "varied, and so does the last one, which keeps the final pixels from being overdrawn (i switches to guiding every "
    "step, shown as 'all' after g). DPM-Solver++ (the default, 20 steps) and DDIM (50) are deterministic; "
    "DDPM adds fresh noise each step (250 steps). "
    f"Where a student distilled from the model is loaded (NAME-student.pt beside it; fashion-train distill makes one), "
    f"s reaches it too: {STUDENT_STEPS[0]}-{STUDENT_STEPS[1]} steps (default {DEFAULT_STEPS[STUDENT]}), one call per item "
    f"each, guidance {STUDENT_GUIDANCE_RANGE[0]:g}-{STUDENT_GUIDANCE_RANGE[1]:g} an input of its network; it learned the "
    "default interval and composed mixes without autoguidance, so a, i and x wait for a teacher sampler. "
    f"Autoguidance (a, shown as +AG after g; g at its default moves to {AUTOGUIDED_GUIDANCE:g}) adds a second push beside guidance, "
    "away from the errors of a weaker guide model (a small, briefly trained one shipped as NAME-guide.pt beside "
    "the model): the items closest to real ones. "
    "Mixed classes combine by the mix method (x): compose, the "
    "default, sums guidance over the picked classes; average is the original design's faint embedding average. "
    "Item i uses seed + i; a blend strip shares one seed. "
    "Exports are 8x nearest-neighbour PNGs whose metadata holds the recipe (o re-opens one). "
    "Steering: w makes variations of the selected item (its noise mixed with other seeds', by the vary row: "
    "0 = the item, 1 = unrelated items); E redraws it as the picked classes from part-way down the noise (the edit "
    "row's strength: 0 = the item, 1 = fresh noise) and O does so from a picture file (made grey, 28x28, light on "
    "black); t turns the class list over to a second mix asked for from the switch row's fraction of the steps on; "
    "f shows the selected item's denoising film (x_t beside its predicted x_0: ←→ a step, ↑↓ five, e exports it "
    "as an animated PNG); d draws the items at half scale. Space on the vary, edit or switch row turns it off."
)


def binding_rows(bindings: list[Binding], key_display: Callable[[Binding], str]) -> list[tuple[str, str]]:
    """(keys, what) per binding, keys as the footer shows them (App.get_key_display); a key bound
    twice (live mode's on and off) is listed once."""
    rows, seen = [], set()
    for binding in bindings:
        if binding.key in seen:
            continue
        seen.add(binding.key)
        keys = " ".join(key_display(replace(binding, key=key.strip())) for key in binding.key.split(","))
        rows.append((keys, f"{binding.description}: {binding.tooltip}" if binding.tooltip else binding.description))
    return rows


def key_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, expand=True,
                  padding=(0, 1))
    table.add_column("key", style="bold cyan", no_wrap=True, width=14)
    table.add_column("what", ratio=1)
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(Screen):
    BINDINGS = [
        Binding("escape,question_mark", "app.close_help", "Back"),
    ]

    def compose(self) -> ComposeResult:
        app, keys = type(self.app), self.app.get_key_display
        GenerateScreen, MonitorScreen = app.MODES["generate"], app.MODES["monitor"]

        with VerticalScroll(id="help-body", classes="layout"):
            yield Static(Text("fashion-tui keys", style="bold"), id="help-title")
            yield Static(key_table("Everywhere", binding_rows(app.BINDINGS, keys) + [("^p", "command palette: every action by name"), ("tab", "next panel")]))
            yield Static(key_table("Generate", binding_rows(GenerateScreen.BINDINGS, keys)))
            yield Static(key_table("Generate: side panel", binding_rows(ClassControls.BINDINGS, keys) + TYPING))
            yield Static(key_table("Generate: items (Tab to focus)", binding_rows(ItemGrid.BINDINGS, keys)))
            compare = [b for b in CompareScreen.BINDINGS if b not in CHART_BINDINGS and b.key != "escape"]
            yield Static(key_table("Monitor", binding_rows(MonitorScreen.BINDINGS, keys)
                                   + [("space", "compare view: pick or drop the highlighted run")]
                                   + [(key, f"compare view: {what}") for key, what in binding_rows(compare, keys)]))
            yield Static(ABOUT, id="help-about")
        yield TooSmall()
        yield Footer(compact=True)
