"""Every line fits at 80x24 with every setting on: the info line with variations, an edit and a class
switch; the footer of each screen and view (the film's, the zoom's, the dense grid's, the compare
view's, the monitor's while it trains); the zoomed item's caption; the compare view's run names and
legends; the machine chart's round axis labels when the load is steady."""

from __future__ import annotations

import json
import time

from rich.text import Text
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from core.sampling.limits import DEFAULT_VARIATION_STRENGTH
from tui.machine import MachineReading
from tui.messages import MachineUpdate
from tui.screens.generate import INFO_ROWS
from tui.widgets.curve_chart import CurveChart

from test_tui_compare import make_run
from test_tui_steering import generate, generated_and_selected, move_to


def footer_keys_cut(app) -> list[str]:
    """The footer's keys that do not show whole left of the command palette's key ([] when all do)."""
    footer = app.screen.query_one(Footer)
    keys = list(footer.query(FooterKey))
    palette = next(key for key in keys if key.has_class("-command-palette"))
    cut, right = [], 0
    for key in keys:
        if key is not palette:
            right += key.outer_size.width + key.styles.margin.right  # laid out left to right, as Footer does
            if right - key.styles.margin.right > footer.size.width - palette.outer_size.width:
                cut.append(f"{key.key_display} {key.description}")
    return cut


def assert_bottom_row_whole(app, helpers) -> None:
    assert footer_keys_cut(app) == []
    assert helpers.screen_text(app).splitlines()[-1].endswith("^p palette")  # nothing after it (no stray cell)


def info_rows(app) -> list[str]:
    info = app.screen.query_one("#info", Static)
    text = Text(str(info.render()))
    return [str(line) for line in text.wrap(app.console, info.content_size.width)]


async def test_vary_edit_and_switch_on_the_info_line_and_every_footer_fit(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await generated_and_selected(pilot, helpers, 1)
        assert_bottom_row_whole(app, helpers)
        await generate(pilot, helpers, "E")
        await generate(pilot, helpers, "w")
        await pilot.press("t", "space", *["down"] * 9, "space", "t")  # then boot, from 40% of the steps
        await generate(pilot, helpers, "g")
        state = screen.state
        assert state.variation_seed is not None and state.init_image is not None and state.other_mix is not None
        rows = info_rows(app)
        assert len(rows) <= INFO_ROWS, rows
        shown = " ".join(rows)
        for words in (f"vary {DEFAULT_VARIATION_STRENGTH:.2f}", "edit 0.60", "then boot 100% from 40%"):
            assert words in shown, (words, shown)
        text = helpers.screen_text(app)
        assert all(row.strip() in " ".join(text.split()) for row in rows)  # on screen as laid out
        assert_bottom_row_whole(app, helpers)

        await pilot.press("z")  # the zoomed item at 1x while the status line takes two rows: its caption whole
        assert screen.grid.zoomed and "· ←→ item · z back" in helpers.screen_text(app)
        assert_bottom_row_whole(app, helpers)
        await pilot.press("escape", "f")
        await helpers.wait_until(pilot, lambda: screen.grid.film is not None, what="the film")
        assert "esc Back" in helpers.screen_text(app).splitlines()[-1]
        assert_bottom_row_whole(app, helpers)
        await pilot.press("escape", "d")
        assert screen.grid.dense and not screen.grid.zoomed
        assert_bottom_row_whole(app, helpers)
        await pilot.press("v")  # live mode's label
        assert_bottom_row_whole(app, helpers)


async def test_a_ten_digit_seed_and_autoguidance_show_whole_in_their_rows(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await move_to(pilot, ("setting", "seed"))
        await pilot.press(*"2147483647", "enter", "a")
        assert app.screen.state.seed == 2147483647 and app.screen.state.autoguidance
        lines = helpers.screen_text(app).splitlines()
        rows = [line[1:21].split() for line in lines]  # the panel, less the cursor's column
        assert ["seed", "2147483647", "lock"] in rows and ["guidance", "1+AG"] in rows, lines


async def test_the_info_line_says_more_where_there_is_room(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await generated_and_selected(pilot, helpers, 1)
        await generate(pilot, helpers, "w")
        shown = " ".join(info_rows(app))
        assert "around seed" in shown and "(step " in shown  # at 80 columns with an edit and a switch: left out


async def test_the_compare_view_shows_the_apps_run_names_and_wraps_its_legend(make_app, tmp_path, helpers):
    root = tmp_path / "runs"
    names = ["tui-20261207-040211", "tui-20261207-041530", "tui-20261207-043004"]
    runs = [make_run(root, name, 1.0 + i) for i, name in enumerate(names)]
    app = make_app(run_dir=str(runs[0]))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: app.screen.snapshot is not None, what="the run")
        await pilot.press("c")
        screen = app.screen
        await helpers.wait_until(pilot, lambda: len(screen.runs) == 3, what="the runs folder")
        await pilot.press("down", "space", "down", "space")
        loss = screen.query_one("#compare-loss", CurveChart)
        await helpers.wait_until(pilot, lambda: len(loss.curves) == 3, what="three runs")
        await pilot.pause(0.1)
        lines = helpers.screen_text(app).splitlines()
        for name in names:
            assert any(name in line[:27] for line in lines), name  # whole in the list
        legend = " ".join(" ".join(line[28:].split()) for line in lines[:3])
        assert legend.startswith("━ " + " ━ ".join(names)) and "loss · smoothing 0.60 · log y · x step" in legend
        assert "…" not in "".join(line[28:] for line in lines[:3])
        assert_bottom_row_whole(app, helpers)


def axis_labels(chart: CurveChart) -> tuple[list[str], list[str]]:
    """The left and the right y axis's labels as the chart draws them now."""
    lines = str(chart.render()).splitlines()
    return ([line.split("┤")[0].strip() for line in lines if "┤" in line],
            [line.rsplit("├", 1)[1].strip() for line in lines if "├" in line])


async def test_a_steady_machine_and_a_flat_accuracy_get_round_axis_labels(make_app, run_dir, helpers):
    with open(run_dir / "quality.jsonl", "w") as handle:  # an accuracy stuck at 10% (an untrained model)
        for step in (10, 30, 50):
            handle.write(json.dumps({"step": step, "epoch": step // 10, "accuracy": 0.1, "kid": 1.2,
                                     "per_class_accuracy": [1.0] + [0.0] * 9, "elapsed_sec": step * 0.1}) + "\n")
    app = make_app(run_dir=str(run_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await helpers.wait_until(pilot, lambda: screen.snapshot is not None and screen.snapshot.quality, what="the run")
        await helpers.wait_until(pilot, lambda: "palette" in helpers.screen_text(app), what="the footer drawn (a busy machine)")
        assert_bottom_row_whole(app, helpers)
        right = axis_labels(screen.query_one("#chart", CurveChart))[1]
        assert right and right[0] == "10" and all(len(label) <= 3 for label in right), right  # not 10.0000000000000000

        await pilot.press("v", "v")
        screen.workers.cancel_group(screen, "tail")  # the machine's own readings stop: this test's stand in
        await pilot.pause(0.2)
        now = time.monotonic()
        steady = tuple(MachineReading(now - 30 + i, 2, 99.7 + 0.1 * (i % 2), 50.0, int(0.611 * 2**30))
                       for i in range(30))  # 1.994-1.996 cores busy, 0.61 GB
        screen.post_message(MachineUpdate(steady[-1], steady))
        chart = screen.query_one("#machine-chart", CurveChart)
        await helpers.wait_until(pilot, lambda: chart.curves and len(chart.curves[0].xs) == 30, what="the readings")
        await pilot.pause(0.1)
        left, right = axis_labels(chart)
        assert left and set(left) <= {"0", "0.5", "1", "1.5", "2"}, left  # from 0 to the machine's 2 cores
        assert right and right[-1] == "0" and all(len(label) <= 4 for label in right), right  # GB from 0, two decimals at most
        assert_bottom_row_whole(app, helpers)
