"""TensorBoard event files (`fashion-train --tensorboard`), read back with TensorBoard's own reader:
the scalars, the sample grid and the configs of a run, a resumed run that shows each step once,
and a one-line refusal without the package. Rank 0 alone writes them: test_distributed.py."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from core.classes import SHORT_NAMES
from core.model.config import TrainConfig
from core.training.rundir import METRICS, QUALITY, TENSORBOARD
from core.training.tensorboard import EXTRA, TensorBoardLog
from core.training.trainer import Trainer
from core.checkpoint import read_checkpoint
from support import read_tensorboard


def cli_args(data, run, *extra):
    return ["--data-dir", data, "--run-dir", run, "--preset", "tiny", "--batch-size", "16", "--epochs", "2",
            "--log-every", "1", "--device", "cpu", "--no-progress", "--quality-per-class", "1", *extra]


def test_a_two_epoch_run_writes_what_tensorboard_reads_and_nothing_else_changes(tmp_path, fake_data_dir, train_main):
    assert train_main(*cli_args(fake_data_dir, tmp_path / "plain"))[0] == 0
    code, err = train_main(*cli_args(fake_data_dir, tmp_path / "run", "--tensorboard"))
    assert code == 0, err
    run = tmp_path / "run"
    assert f"tensorboard --logdir {run / TENSORBOARD}" in err
    reader = read_tensorboard(run / TENSORBOARD)
    metrics = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    quality = [json.loads(line) for line in (run / QUALITY).read_text().splitlines()]
    for name in ("loss", "loss_smooth", "lr", "grad_norm", "images_per_sec"):  # at the log cadence, the logged values
        events = reader.Scalars(f"train/{name}")
        assert [(e.step, e.value) for e in events] == [(m["step"], pytest.approx(m[name], rel=1e-6)) for m in metrics]
    assert [e.step for e in reader.Scalars("train/loss")] == list(range(1, 9))
    for name in ("accuracy", "kid"):  # at each epoch's end, the probe's figures
        assert [(e.step, e.value) for e in reader.Scalars(f"quality/{name}")] == \
            [(q["step"], pytest.approx(q[name], rel=1e-6)) for q in quality] and len(quality) == 2
    per_class = quality[-1]["per_class_accuracy"]
    assert [reader.Scalars(f"quality_per_class/{SHORT_NAMES[c]}")[-1].value for c in range(10)] == \
        pytest.approx(per_class)
    assert reader.Scalars("quality/worst_class_accuracy")[-1].value == pytest.approx(min(per_class))
    worst = reader.Tensors("quality/worst_class/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert f"{100 * min(per_class):.0f}%" in worst
    images = reader.Images("samples")  # each epoch's sample grid, at the grid's size
    from PIL import Image

    with Image.open(run / "samples" / "epoch-002.png") as grid:
        assert [(i.step, i.width, i.height) for i in images] == [(4, *grid.size), (8, *grid.size)]
    config = reader.Tensors("config/text_summary")
    assert [c.step for c in config] == [0] and '"preset": "tiny"' in config[0].tensor_proto.string_val[0].decode()

    # the rest of the run directory is what a run without the flag writes: the same files, the same training
    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TENSORBOARD not in p.relative_to(root).parts)

    plain = tmp_path / "plain"
    assert files(run) == files(plain) and not (plain / TENSORBOARD).exists()
    assert [m["loss"] for m in metrics] == [json.loads(line)["loss"] for line in (plain / METRICS).read_text().splitlines()]
    a, b = (read_checkpoint(r / "checkpoints" / "step-0000008.pt")["ema"] for r in (run, plain))
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_resumed_run_appends_to_the_folder_and_shows_each_step_once(tmp_path, fake_data_dir):
    run = tmp_path / "run"
    config = TrainConfig(epochs=2, batch_size=16, checkpoint_every=100, log_every=1, sample_grid_per_class=1, seed=0,
                         warmup_steps=2)
    Trainer(run, config, preset="tiny", data_dir=fake_data_dir, tensorboard=TensorBoardLog()).run()
    (run / "checkpoints" / "step-0000008.pt").unlink()  # as if killed after logging steps 5-8: resume from step 4
    Trainer(run, config, preset="tiny", data_dir=fake_data_dir, resume=True, tensorboard=TensorBoardLog()).run()
    assert len(list((run / TENSORBOARD).iterdir())) == 2  # one event file for each start, in the same folder
    reader = read_tensorboard(run / TENSORBOARD)
    assert [e.step for e in reader.Scalars("train/loss")] == list(range(1, 9))  # steps 5-8 once: the resumed run's
    resumed = [json.loads(line)["loss"] for line in (run / METRICS).read_text().splitlines()]
    assert [e.value for e in reader.Scalars("train/loss")] == pytest.approx(resumed, rel=1e-6)
    assert [i.step for i in reader.Images("samples")] == [4, 8]
    assert [c.step for c in reader.Tensors("config/text_summary")] == [0, 4]  # each start's configs


def test_without_the_package_the_flag_stops_the_run_before_it_starts(tmp_path, fake_data_dir, monkeypatch, train_main):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as when it is not installed
    code, err = train_main(*cli_args(fake_data_dir, tmp_path / "run", "--tensorboard", tmp_path / "tb"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("fashion-train: error: --tensorboard needs the tensorboard package") and EXTRA in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
    with pytest.raises(ValueError) as refused:
        TensorBoardLog()  # a caller that did not ask missing() first (the app) gets the same line
    assert str(refused.value) in err
