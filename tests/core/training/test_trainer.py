import dataclasses
import json

import pytest
import torch
from PIL import Image

from core.checkpoint import load_generator, read_checkpoint
from core.model.config import TrainConfig
from core.training.step import lr_at
from core.training.trainer import Trainer
from core.training.state import TrainingError
from core.training.rundir import list_checkpoints
from support import poison_loss

FIELDS = {"step", "epoch", "loss", "loss_smooth", "lr", "images_per_sec", "elapsed_sec", "eta_sec"}


def config(**overrides):
    base = dict(epochs=2, batch_size=16, checkpoint_every=3, log_every=1, sample_grid_per_class=1, seed=0, warmup_steps=2)
    return TrainConfig(**(base | overrides))


def test_lr_warmup_then_cosine():
    c = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 100, c) == pytest.approx(1e-4)
    assert lr_at(9, 100, c) == pytest.approx(1e-3)
    assert lr_at(100, 100, c) == pytest.approx(1e-4)
    assert lr_at(30, 100, c) > lr_at(60, 100, c)
    short = TrainConfig(lr=1e-3, warmup_steps=200)
    assert lr_at(2, 30, short) == pytest.approx(1e-3)  # warm-up capped at a tenth of a 30-step run


def test_run_writes_checkpoints_metrics_and_sample_grids(tmp_path, fake_data_dir):
    events = []
    trainer = Trainer(tmp_path / "run", config(), preset="tiny", data_dir=fake_data_dir, on_event=events.append)
    result = trainer.run()
    assert result["outcome"] == "finished" and result["step"] == 8  # 64 images / 16 = 4 steps x 2 epochs
    lines = [json.loads(l) for l in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 9))
    assert FIELDS <= set(lines[0])
    assert lines[-1]["epoch"] == pytest.approx(2.0) and lines[-1]["eta_sec"] == 0
    grids = sorted((tmp_path / "run/samples").glob("epoch-*.png"))
    assert [g.name for g in grids] == ["epoch-001.png", "epoch-002.png"]
    assert Image.open(grids[0]).size == ((28 + 2) * 1 * 2 + 4, (28 + 2) * 10 * 2 + 4)  # one row per class, x2
    ckpts = list_checkpoints(tmp_path / "run")
    assert ckpts[-1].name == "step-0000008.pt" and len(ckpts) <= 3
    state = read_checkpoint(ckpts[-1])
    assert {"model", "ema", "optimizer", "rng", "wall_time_sec", "model_config", "train_config"} <= set(state)
    assert load_generator(ckpts[-1]).info["step"] == 8
    info = json.loads((tmp_path / "run/run.json").read_text())
    assert info["state"] == "finished" and info["device"] == "cpu"
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finished" and kinds.count("samples") == 2


def test_stop_then_resume_matches_an_uninterrupted_run(tmp_path, fake_data_dir):
    straight = Trainer(tmp_path / "a", config(sample_grid_per_class=0), preset="tiny", data_dir=fake_data_dir)
    straight.run()

    def stop_at_5(event):
        if event.kind == "log" and event.step == 5:
            interrupted.stop("test")
    interrupted = Trainer(tmp_path / "b", config(sample_grid_per_class=0), preset="tiny", data_dir=fake_data_dir, on_event=stop_at_5)
    result = interrupted.run()
    assert result["outcome"] == "stopped" and result["step"] == 5
    assert list_checkpoints(tmp_path / "b")[-1].name == "step-0000005.pt"
    inode = (tmp_path / "b/metrics.jsonl").stat().st_ino
    resumed = Trainer(tmp_path / "b", config(sample_grid_per_class=0), data_dir=fake_data_dir, resume=True)
    assert resumed.step == 5 and resumed.preset == "tiny"
    assert resumed.run()["step"] == 8
    # stopped right at a checkpoint: no line to drop, so the log was appended to, not rewritten (a monitor
    # following it would otherwise report it replaced)
    assert (tmp_path / "b/metrics.jsonl").stat().st_ino == inode
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    steps = [json.loads(l)["step"] for l in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, fake_data_dir):
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(tmp_path / "empty", config(), data_dir=fake_data_dir, resume=True)


def test_resume_as_trained_takes_the_checkpoints_settings_but_the_callers_device(tmp_path, fake_data_dir):
    trained = config(epochs=1, batch_size=8, lr=3e-4, sample_grid_per_class=0)
    Trainer(tmp_path / "r", trained, preset="tiny", data_dir=fake_data_dir).run()
    other = config(epochs=5, batch_size=16, lr=1e-3, device="cpu")
    assert Trainer(tmp_path / "r", other, data_dir=fake_data_dir, resume=True).train_config == other  # train_cli's way
    resumed = Trainer(tmp_path / "r", other, data_dir=fake_data_dir, resume=True, as_trained=True)
    assert resumed.train_config == dataclasses.replace(trained, device="cpu") and resumed.step == resumed.total_steps == 8  # 64 images / 8, 1 epoch
    newest = list_checkpoints(tmp_path / "r")[-1]
    state = read_checkpoint(newest)
    state["train_config"]["from_the_future"] = 1
    torch.save(state, newest.parent / "step-0000099.pt")
    with pytest.raises(TrainingError, match="unusable train config: unknown TrainConfig keys"):
        Trainer(tmp_path / "r", other, data_dir=fake_data_dir, resume=True, as_trained=True)


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path, fake_data_dir):
    Trainer(tmp_path / "r", config(epochs=1, sample_grid_per_class=0), preset="tiny", data_dir=fake_data_dir).run()
    newest = list_checkpoints(tmp_path / "r")[-1]
    (newest.parent / "step-0000099.pt").write_bytes(newest.read_bytes()[:100])
    resumed = Trainer(tmp_path / "r", config(epochs=1), data_dir=fake_data_dir, resume=True)
    assert resumed.step == 4


def test_nan_loss_stops_keeps_last_good_checkpoint_and_names_the_step(tmp_path, fake_data_dir, monkeypatch):
    trainer = Trainer(tmp_path / "n", config(sample_grid_per_class=0), preset="tiny", data_dir=fake_data_dir)
    poison_loss(trainer, 5, float("nan"))
    with pytest.raises(TrainingError) as info:
        trainer.run()
    assert "at step 5" in str(info.value) and "step-0000004.pt" in str(info.value)  # epoch 1 ended at step 4
    kept = list_checkpoints(tmp_path / "n")
    assert [p.name for p in kept] == ["step-0000003.pt", "step-0000004.pt"]
    assert all(torch.isfinite(v).all() for v in read_checkpoint(kept[0])["ema"].values() if v.is_floating_point())
    assert json.loads((tmp_path / "n/run.json").read_text())["state"] == "failed"


def test_bad_device_and_preset(tmp_path, fake_data_dir):
    with pytest.raises(ValueError, match="unknown device"):
        Trainer(tmp_path / "d", config(device="tpu"), data_dir=fake_data_dir)
    with pytest.raises(ValueError, match="unknown preset"):
        Trainer(tmp_path / "d", config(), preset="huge", data_dir=fake_data_dir)


def test_fresh_run_refuses_to_clobber_an_existing_run(tmp_path, fake_data_dir):
    Trainer(tmp_path / "r", config(epochs=1, sample_grid_per_class=0), preset="tiny", data_dir=fake_data_dir).run()
    before = sorted(p.name for p in (tmp_path / "r/checkpoints").iterdir())
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(tmp_path / "r", config(epochs=1), preset="tiny", data_dir=fake_data_dir)
    assert sorted(p.name for p in (tmp_path / "r/checkpoints").iterdir()) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_keeps_every_tensor_on_the_gpu(tmp_path, fake_data_dir):
    trainer = Trainer(tmp_path / "gpu", config(device="cuda", max_steps=3), preset="tiny", data_dir=fake_data_dir)
    assert all(t.device.type == "cuda" for t in [*trainer.objective.parameters(), *trainer.objective.buffers()])
    result = trainer.run()
    assert result["step"] == 3 and json.loads((tmp_path / "gpu" / "run.json").read_text())["device"].startswith("cuda")
    assert load_generator(result["checkpoint"]).info["step"] == 3
