"""The compare view at 80x24: runs of the runs folder picked with space, overlaid in their own colours
with a legend, one pinned on top, the chart keys, and runs that grow or vanish while shown."""

from __future__ import annotations

import json
import shutil

from tui.screens.compare import CompareScreen
from tui.widgets.curve_chart import CurveChart


def make_run(root, name: str, scale: float, quality: bool = True):
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"state": "finished", "device": "cpu", "preset": "tiny", "global_batch": 32}))
    with open(run / "metrics.jsonl", "w") as handle:
        for step in range(10, 110, 10):
            handle.write(json.dumps({"step": step, "loss": scale / step, "elapsed_sec": step * scale}) + "\n")
    if quality:
        with open(run / "quality.jsonl", "w") as handle:
            for step in (50, 100):
                handle.write(json.dumps({"step": step, "accuracy": step / 200 * scale, "kid": 0.1 / step,
                                         "elapsed_sec": step * scale}) + "\n")
    return run


def flat(app, helpers) -> str:
    return " ".join(line.strip() for line in helpers.screen_text(app).splitlines())


async def open_compare(app, pilot, helpers):
    await helpers.wait_until(pilot, lambda: app.screen.snapshot is not None, what="the run")
    await pilot.press("c")
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    await helpers.wait_until(pilot, lambda: len(screen.runs) == 3, what="the runs folder")
    return screen


async def test_pick_pin_and_the_chart_keys(make_app, tmp_path, helpers):
    root = tmp_path / "runs"
    first, second, _ = make_run(root, "alpha", 1.0), make_run(root, "beta", 2.0), make_run(root, "gamma", 3.0, quality=False)
    (root / "not-a-run").mkdir()
    app = make_app(run_dir=str(first))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, helpers)
        loss, quality = screen.query_one("#compare-loss", CurveChart), screen.query_one("#compare-quality", CurveChart)
        await helpers.wait_until(pilot, lambda: loss.curves, what="the followed run's curve")
        assert [c.label for c in loss.curves] == ["alpha"]  # the run the monitor follows comes picked
        await pilot.press("down", "space", "down", "space")
        await helpers.wait_until(pilot, lambda: len(loss.curves) == 3, what="three runs")
        assert [c.label for c in loss.curves] == ["alpha", "beta", "gamma"]
        assert len({c.colour for c in loss.curves}) == 3  # each run its own colour
        assert [c.label for c in quality.curves] == ["alpha", "beta"]  # gamma has no quality records
        assert [c.colour for c in quality.curves] == [c.colour for c in loss.curves[:2]]  # the same colour in both
        text = flat(app, helpers)
        assert "━ alpha  ━ beta  ━ gamma" in text and "runs in" in text  # the legend, at 80 columns
        assert loss.x_range == quality.x_range == (10.0, 100.0)  # shared x axis
        await pilot.press("up", "p")  # beta pinned: first in the legend, drawn last (on top)
        assert screen.pinned == second
        assert [c.label for c in loss.curves] == ["▲ beta", "alpha", "gamma"]
        await pilot.press("a", "a", "l", "k")  # x by training time, linear y, KID
        assert loss.x_axis == "time" and not loss.log_y and quality.curves[0].ys[-1] < 0.01
        assert loss.x_range == (10.0 / 60, 300.0 / 60)  # minutes, the slowest run's
        assert "linear y · x training time" in flat(app, helpers)
        await pilot.press("space")  # unpick beta: its pin goes, its colour is free again
        assert screen.pinned is None and second not in screen.picked
        await pilot.press("escape")
        assert app.screen.settings.x_axis == "time"  # the monitor shares the settings


async def test_runs_that_grow_vanish_or_are_half_written_never_raise(make_app, tmp_path, helpers):
    root = tmp_path / "runs"
    first, second = make_run(root, "alpha", 1.0), make_run(root, "beta", 2.0)
    make_run(root, "gamma", 3.0)
    app = make_app(run_dir=str(first))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, helpers)
        await pilot.press("down", "space")
        loss = screen.query_one("#compare-loss", CurveChart)
        await helpers.wait_until(pilot, lambda: len(loss.curves) == 2, what="two runs")
        with open(second / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({"step": 110, "loss": 0.01, "elapsed_sec": 220}) + "\n" + '{"step": 120, "lo')
        await helpers.wait_until(pilot, lambda: len(loss.curves[1].xs) == 11, what="the appended line")
        shutil.rmtree(second)
        await helpers.wait_until(pilot, lambda: "beta (gone)" in [c.label for c in loss.curves], what="the gone run")
        assert len(loss.curves[1].xs) == 11  # what was read stays drawn
        assert "beta: run directory" in helpers.status_text(app)
        await helpers.wait_until(pilot, lambda: len(screen.runs) == 2, what="the list without it")
        await pilot.press("space", "p", "f")  # keys on the shorter list still work
        assert app.is_running


async def test_f_follows_the_highlighted_run_and_o_lists_another_folder(make_app, tmp_path, helpers):
    root = tmp_path / "runs"
    first = make_run(root, "alpha", 1.0)
    make_run(root, "beta", 2.0)
    make_run(root, "gamma", 3.0)
    other = tmp_path / "elsewhere"
    make_run(other, "delta", 1.5)
    app = make_app(run_dir=str(first))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, helpers)
        await pilot.press("o", *str(other), "enter")
        await helpers.wait_until(pilot, lambda: [p.name for p in screen.runs] == ["delta", "alpha"],
                                 what="the other folder (and the picked run from the first)")
        assert screen.root == other and f"/ {other.name}/" not in flat(app, helpers)
        await pilot.press("home", "f")
        await helpers.wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen), what="the monitor")
        assert app.screen.run_dir == other / "delta"
