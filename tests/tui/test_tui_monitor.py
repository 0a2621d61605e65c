"""The monitor: follow a run directory that grows during the test; train, pause, stop, generate from it."""

from __future__ import annotations

import shutil
import sys

from core.classes import SHORT_NAMES
from core.training.tensorboard import EXTRA
from support import make_fake_dataset, read_tensorboard
from tui.pixels import ITEM_SIZE
from tui.runwatch import SampleGrid
from tui.screens.monitor import sample_layout
from tui.widgets.curve_chart import CurveChart
from tui.widgets.pixel_canvas import PixelCanvas


def monitor_text(app) -> str:
    screen = app.screen
    return "\n".join(str(screen.query_one(f"#{name}").render()) for name in ("run-title", "run-progress", "run-checkpoints"))


async def test_follows_a_growing_run_and_survives_its_removal(make_app, run_dir, tmp_path, helpers):
    app = make_app(run_dir=str(run_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_mode == "monitor"
        await helpers.wait_until(pilot, lambda: "step 50/100" in monitor_text(app), what="the first snapshot")
        text = monitor_text(app)
        assert "device cpu" in text and "running" in text and "150 img/s" in text and "step-0000010" in text
        chart = app.screen.query_one(CurveChart)
        assert len(chart.curves[0].ys) == 5 and any("\u2801" <= c <= "\u28ff" for c in str(chart.render()))
        samples = app.screen.query_one("#samples", PixelCanvas)
        names = [label.text for label in samples._labels[1:]]
        assert names == list(SHORT_NAMES)  # every class row of the epoch grid, at 80x24 too
        assert samples.virtual_size.height <= samples.size.height and len(samples._tiles) >= 10
        assert all(tile.y + tile.rows <= samples.size.height for tile in samples._tiles)

        helpers.write_metrics(run_dir, [60, 70])
        line = helpers.metrics_line(80)
        with open(run_dir / "metrics.jsonl", "a") as handle:
            handle.write(line[:20])  # half-written
        await helpers.wait_until(pilot, lambda: "step 70/100" in monitor_text(app), what="the appended lines")
        with open(run_dir / "metrics.jsonl", "a") as handle:
            handle.write(line[20:])
        await helpers.wait_until(pilot, lambda: "step 80/100" in monitor_text(app), what="the completed line")
        assert len(chart.curves[0].ys) == 8

        shutil.rmtree(run_dir)
        await helpers.wait_until(pilot, lambda: "does not exist" in helpers.status_text(app), what="the removal note")
        assert "missing" in monitor_text(app) and app.is_running
        await pilot.press("g")
        assert "no checkpoint" in helpers.status_text(app)


async def test_g_switches_to_generate_on_the_newest_checkpoint(make_app, run_dir, helpers):
    app = make_app(run_dir=str(run_dir), checkpoint=str(run_dir / "missing.pt"))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: "step-0000010" in monitor_text(app), what="the checkpoint list")
        await pilot.press("g")
        await helpers.wait_until(pilot, lambda: app.current_mode == "generate", what="the switch")
        await helpers.model_ready(pilot)
        assert app.screen.generator.path == run_dir / "checkpoints" / "step-0000010.pt"


async def test_o_follows_the_run_directory_typed_into_its_prompt(make_app, run_dir, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        assert "no run attached" in monitor_text(app) and app.screen.run_dir is None
        await pilot.press("o", *str(run_dir), "enter")
        await helpers.wait_until(pilot, lambda: "step 50/100" in monitor_text(app), what="the run")
        assert app.screen.run_dir == run_dir and "step-0000010" in monitor_text(app)
        assert f"following {run_dir}" in helpers.status_text(app)


async def test_train_pause_stop_then_generate_with_the_result(make_app, tmp_path, helpers):
    # 320 quick steps an epoch (640 images, batches of 2, no sample grids) and none of the epoch's-end
    # work in between, so that steps follow each other and a pause that does not hold shows at once
    app = make_app(data_dir=str(make_fake_dataset(tmp_path / "data", n_train=640)))
    app.options.train_overrides.update(batch_size=2, sample_grid_per_class=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("m")
        assert app.current_mode == "monitor"
        screen = app.screen
        await pilot.press("p")  # nothing to pause yet: the key is hidden and does nothing
        await pilot.press("t")
        await helpers.wait_until(pilot, lambda: screen.trainer is not None and list((tmp_path / "runs").glob("tui-*")),
                                 what="the trainer to start and make its run directory")
        runs = list((tmp_path / "runs").glob("tui-*"))
        assert len(runs) == 1 and screen.run_dir == runs[0]
        await helpers.wait_until(pilot, lambda: "step " in monitor_text(app) and screen.snapshot and screen.snapshot.steps,
                                 what="logged steps")
        trainer = screen.trainer
        await pilot.press("p")
        assert trainer.paused and "paused" in monitor_text(app)
        held = trainer.step
        await pilot.pause(0.5)  # ten steps' time or more
        assert trainer.step <= held + 1  # the step in flight when p was pressed may end; no other starts
        await pilot.press("p")
        assert not trainer.paused
        await helpers.wait_until(pilot, lambda: trainer.step > held + 1, what="training to go on")
        await helpers.wait_until(pilot, lambda: screen.snapshot.checkpoints, timeout=60, what="a checkpoint")
        await pilot.press("x")
        await helpers.wait_until(pilot, lambda: screen.trainer is None, timeout=60, what="the trainer to stop")
        assert "training stopped" in helpers.status_text(app)
        await helpers.wait_until(pilot, lambda: "stopped" in monitor_text(app), what="run.json to say stopped")
        await pilot.press("g")
        await helpers.wait_until(pilot, lambda: app.current_mode == "generate", what="the switch")
        await helpers.model_ready(pilot)
        assert app.screen.generator.path.parent == runs[0] / "checkpoints"


async def test_t_with_tensorboard_writes_the_runs_event_files(make_app, fake_data_dir, tmp_path, helpers):
    app = make_app(data_dir=str(fake_data_dir), tensorboard=str(tmp_path / "tb"))  # fashion-tui --tensorboard DIR
    app.options.train_overrides.update(epochs=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m", "t")
        await helpers.wait_until(pilot, lambda: "training finished" in helpers.status_text(app), timeout=60,
                                 what="the end of the run")
    run = next((tmp_path / "runs").glob("tui-*"))
    reader = read_tensorboard(tmp_path / "tb" / run.name)  # DIR/RUN_NAME: one folder for all the app's runs
    assert [e.step for e in reader.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in reader.Scalars("quality/accuracy")] == [4] and [i.step for i in reader.Images("samples")] == [4]
    assert not (run / "tb").exists()


async def test_t_with_tensorboard_but_without_the_package_is_one_line_and_writes_nothing(make_app, fake_data_dir,
                                                                                       tmp_path, helpers, monkeypatch):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as when it is not installed
    app = make_app(data_dir=str(fake_data_dir), tensorboard="")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m", "t")
        await helpers.wait_until(pilot, lambda: "training failed" in helpers.status_text(app), what="the refusal")
        assert EXTRA in helpers.status_text(app) and app.screen.trainer is None
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


async def test_every_figure_of_a_long_run_is_on_screen_at_80x24(make_app, tmp_path, helpers):
    import json

    run = tmp_path / "runs" / "wide-45-epochs-resumed"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"state": "running", "device": "cpu", "preset": "wide", "epochs": 56}))
    (run / "metrics.jsonl").write_text(json.dumps({
        "step": 21280, "epoch": 45.55, "loss": 0.1353, "loss_smooth": 0.1474, "lr": 1.1e-4, "images_per_sec": 164.0,
        "elapsed_sec": 12055.0, "eta_sec": 3265.0, "total_steps": 25460}) + "\n")
    app = make_app(run_dir=str(run))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: "step 21,280/25,460" in helpers.screen_text(app), what="the snapshot")
        text = " ".join(line.strip() for line in helpers.screen_text(app).splitlines())
        for figure in ("epoch 45.55/56", "ran 3h20m", "loss 0.1353", "164 img/s", "ETA 54m25s", "lr 1.1e-04",
                       "preset wide", "device cpu"):
            assert figure in text, figure
        assert run.name in text.replace(" ", "")


async def test_r_resumes_a_stopped_run_with_its_own_settings_and_says_when_nothing_is_left(make_app, fake_data_dir, tmp_path,
                                                                                         helpers):
    import json

    from core.model.config import TrainConfig
    from core.training.trainer import Trainer
    from core.training.rundir import list_checkpoints

    run = tmp_path / "runs" / "earlier"
    trained = TrainConfig(epochs=3, batch_size=16, log_every=1, checkpoint_every=2, sample_grid_per_class=0,
                          warmup_steps=2, lr=5e-4)
    first = Trainer(run, trained, preset="tiny", data_dir=fake_data_dir,
                    on_event=lambda e: first.stop("test") if e.kind == "log" and e.step == 5 else None)
    assert first.run()["step"] == 5
    app = make_app(data_dir=str(fake_data_dir), run_dir=str(run))  # the app's own training settings differ
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await helpers.wait_until(pilot, lambda: "step 5/12" in monitor_text(app), what="the stopped run")
        await pilot.press("r")
        await helpers.wait_until(pilot, lambda: "nothing to resume" in helpers.status_text(app)
                                 or "training finished" in helpers.status_text(app), timeout=60, what="the end of the run")
        assert "training finished" in helpers.status_text(app) and screen.trainer is None
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 13))  # 3 epochs of 4 steps, picked up at step 6: its own epochs and batch
        assert list_checkpoints(run)[-1].name == "step-0000012.pt"
        info = json.loads((run / "run.json").read_text())
        assert info["state"] == "finished" and info["train_config"]["lr"] == 5e-4
        await pilot.press("r")  # the run has trained all its epochs
        await helpers.wait_until(pilot, lambda: "nothing to resume" in helpers.status_text(app), what="the refusal")
        assert "finished its 3 epochs" in helpers.status_text(app) and screen.trainer is None
        assert list_checkpoints(run)[-1].name == "step-0000012.pt"


async def test_r_without_a_run_or_a_checkpoint_is_a_message(make_app, fake_data_dir, tmp_path, helpers):
    empty = tmp_path / "runs" / "empty"
    empty.mkdir(parents=True)
    app = make_app(data_dir=str(fake_data_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        screen = app.screen
        screen.action_resume()  # the key is hidden without a run; the action still explains
        assert "no run attached" in helpers.status_text(app)
        screen.attach(empty)
        await helpers.wait_until(pilot, lambda: screen.snapshot is not None, what="the first look at the run")
        await pilot.press("r")
        await helpers.wait_until(pilot, lambda: "training failed" in helpers.status_text(app), what="the failure")
        assert "nothing to resume: no checkpoint in" in helpers.status_text(app) and screen.trainer is None
        assert not list(empty.iterdir())  # nothing written


async def test_r_refuses_a_run_another_process_is_still_training(make_app, run_dir, helpers):
    import json
    import subprocess

    other = subprocess.Popen(["sleep", "60"])  # stands in for a fashion-train process
    try:
        info = json.loads((run_dir / "run.json").read_text()) | {"pid": other.pid}
        (run_dir / "run.json").write_text(json.dumps(info))
        before = (run_dir / "metrics.jsonl").read_bytes()
        app = make_app(run_dir=str(run_dir))
        async with app.run_test(size=(80, 24)) as pilot:
            await helpers.wait_until(pilot, lambda: app.screen.snapshot is not None, what="the first look at the run")
            await pilot.press("r")
            assert f"still training in process {other.pid}" in helpers.status_text(app)
            assert app.screen.trainer is None and app.screen.training_dir is None
        assert (run_dir / "metrics.jsonl").read_bytes() == before
    finally:
        other.kill()
        other.wait()


def test_sample_layout_fits_every_class_and_prefers_larger_items():
    thumbnails = {size: tuple(tuple(bytes([row * 20]) * size * size for _ in range(8)) for row in range(10))
                  for size in (28, 14, 10, 7)}
    grid = SampleGrid(None, 1, 242, 302, 8, thumbnails)
    tiles, labels, size, per_class = sample_layout(grid, 77, 13)  # the monitor's canvas at 80x24
    assert [label.text for label in labels] == list(SHORT_NAMES) and size == 10 and per_class >= 1
    assert all(t.y + t.rows <= 13 and t.x + t.columns <= 77 for t in tiles)
    assert tiles[0].pixels == thumbnails[10][0][0] and tiles[-1].pixels == thumbnails[10][9][per_class - 1]
    big = sample_layout(grid, 300, 200)
    assert big[2] == ITEM_SIZE and big[3] == 8  # room for the whole grid at full size
    tiny = sample_layout(grid, 30, 3)  # nothing fits: the smallest items, one per class, scrolling
    assert tiny[2:] == (7, 1)
