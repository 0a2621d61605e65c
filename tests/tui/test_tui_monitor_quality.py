"""The monitor's quality line and curves, its chart keys, its views and its machine panel, at 80x24."""

from __future__ import annotations

import json
import shutil

from tui.screens.compare import CompareScreen
from tui.widgets.curve_chart import CurveChart


def quality_line(step: int, accuracy: float, kid: float = 0.05) -> str:
    per_class = [accuracy] * 9 + [accuracy / 2]
    return json.dumps({"step": step, "epoch": step // 50, "accuracy": accuracy, "kid": kid, "elapsed_sec": step * 0.1,
                       "per_class_accuracy": per_class, "items": 200, "seconds": 2.0, "cost": 0.04}) + "\n"


def flat(app, helpers) -> str:
    return " ".join(line.strip() for line in helpers.screen_text(app).splitlines())


async def test_quality_line_and_curve_and_the_chart_keys(make_app, run_dir, helpers):
    (run_dir / "quality.jsonl").write_text(quality_line(25, 0.5) + quality_line(50, 0.8))
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(info | {"global_batch": 16}))
    app = make_app(run_dir=str(run_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: "quality e1: accuracy 80.0%" in flat(app, helpers), what="the quality line")
        text = flat(app, helpers)
        assert "(worst boot 40%)" in text and "KID 0.0500" in text and "probe 2.0 s = 4%" in text
        chart = app.screen.query_one("#chart", CurveChart)
        labels = [curve.label for curve in chart.curves]
        assert labels == ["loss", "smoothed", "accuracy %"] and chart.curves[-1].right
        assert chart.curves[-1].ys[0] == 50.0  # smoothing is debiased: the first point is the first value
        assert any("\u2801" <= c <= "\u28ff" for c in str(chart.render()))  # braille dots
        assert "smoothing 0.60 · log y · x step" in flat(app, helpers)
        await pilot.press("right_square_bracket", "l", "a", "k")
        await pilot.pause()
        text = flat(app, helpers)
        assert "smoothing 0.80 · linear y · x images seen" in text and "KID (right)" in text
        assert not chart.log_y and chart.x_axis == "images" and chart.curves[-1].label == "KID"
        assert chart.curves[0].xs[0] == 10 * 16 and chart.curves[-1].xs == (25 * 16, 50 * 16)  # step x global batch
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert app.screen.settings.smoothing == 0.0 and [c.label for c in chart.curves] == ["loss", "KID"]

        with open(run_dir / "quality.jsonl", "a") as handle:
            handle.write(quality_line(75, 0.9)[:25])  # half-written: not shown until complete
        await pilot.pause(1.2)
        assert "quality e1:" in flat(app, helpers)
        with open(run_dir / "quality.jsonl", "a") as handle:
            handle.write(quality_line(75, 0.9)[25:])
        await helpers.wait_until(pilot, lambda: "quality e1: accuracy 90.0%" in flat(app, helpers), what="the new record")
        shutil.rmtree(run_dir)
        await helpers.wait_until(pilot, lambda: "does not exist" in helpers.status_text(app), what="the removal note")
        await pilot.press("v", "v", "v", "l")
        assert app.is_running


async def test_v_steps_through_curves_and_the_machine(make_app, run_dir, helpers):
    app = make_app(run_dir=str(run_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await helpers.wait_until(pilot, lambda: screen.snapshot is not None, what="the run")
        samples, chart = screen.query_one("#samples"), screen.query_one("#chart", CurveChart)
        assert samples.display and chart.display and chart.size.height >= 4
        small = chart.size.height
        await pilot.press("v")
        await pilot.pause()
        assert not samples.display and chart.size.height > small + 8  # the curves take the samples' rows
        assert "view: curves" in helpers.status_text(app)
        await pilot.press("v")
        await helpers.wait_until(pilot, lambda: "cores busy" in flat(app, helpers), what="the machine panel")
        assert not chart.display and screen.query_one("#rate-chart", CurveChart).display
        rates = screen.query_one("#rate-chart", CurveChart).curves
        assert rates[0].label == "images/s" and rates[0].ys == (110.0, 120.0, 130.0, 140.0, 150.0)
        await helpers.wait_until(pilot, lambda: screen.query_one("#machine-chart", CurveChart).curves,
                                 what="the machine chart")
        await pilot.press("v")
        await pilot.pause()
        assert samples.display and chart.display


async def test_c_opens_the_compare_view_and_escape_comes_back(make_app, run_dir, helpers):
    app = make_app(run_dir=str(run_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: app.screen.snapshot is not None, what="the run")
        monitor = app.screen
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen) and app.screen.picked == (run_dir,)
        assert app.screen.settings is monitor.settings  # one set of chart settings for both
        await pilot.press("escape")
        assert app.screen is monitor
