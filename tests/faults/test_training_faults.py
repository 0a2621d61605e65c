"""Training faults checked in-process (cheap): Inf loss, a full disk, hostile files found by --resume.

train_cli.main runs in this process for some of them, with its signal handlers kept out of pytest's way and
COLUMNS wide (the 80-column wrap is test_data_faults.py's xfail, not these tests' subject).
"""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from core.checkpoint import read_checkpoint
from core.model.config import TrainConfig
from core.training.trainer import Trainer
from core.training.state import TrainingError
from core.training.rundir import list_checkpoints
from faultkit import Exploit
from support import poison_loss


def config(**overrides) -> TrainConfig:
    base = dict(epochs=1, batch_size=16, checkpoint_every=3, log_every=1, sample_grid_per_class=0, seed=0, warmup_steps=2)
    return TrainConfig(**(base | overrides))


def cli_args(data, run, *extra):
    return ["--data-dir", data, "--run-dir", run, "--preset", "tiny", "--batch-size", "16", "--epochs", "1",
            "--checkpoint-every", "3", "--log-every", "1", "--device", "cpu", "--no-progress", *extra]


def test_inf_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, fake_data_dir):
    trainer = Trainer(tmp_path / "run", config(epochs=2), preset="tiny", data_dir=fake_data_dir)
    poison_loss(trainer, 6, float("inf"))
    with pytest.raises(TrainingError) as info:
        trainer.run()
    assert "loss became inf at step 6" in str(info.value) and "step-0000004.pt" in str(info.value)
    kept = list_checkpoints(tmp_path / "run")
    assert [p.name for p in kept] == ["step-0000003.pt", "step-0000004.pt"]
    assert all(torch.isfinite(v).all() for v in read_checkpoint(kept[-1])["model"].values() if v.is_floating_point())
    assert json.loads((tmp_path / "run/run.json").read_text())["state"] == "failed"


def test_full_disk_while_checkpointing_is_one_line(tmp_path, fake_data_dir, monkeypatch, train_main):
    real_fsync = os.fsync

    def full_for_checkpoints(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".step-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_for_checkpoints)
    code, err = train_main(*cli_args(fake_data_dir, tmp_path / "run"))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("fashion-train: error: ") and "No space left on device" in lines[-1]
    assert json.loads((tmp_path / "run/run.json").read_text())["state"] == "failed"
    assert list_checkpoints(tmp_path / "run") == [] and not list((tmp_path / "run/checkpoints").glob("*.tmp"))


@pytest.fixture
def run_with_hostile_newest(tmp_path, fake_data_dir):
    """A finished 4-step run whose newest checkpoint file, step-0000009.pt, is a hostile pickle."""
    run = tmp_path / "run"
    Trainer(run, config(), preset="tiny", data_dir=fake_data_dir).run()
    marker = tmp_path / "code-ran"
    torch.save({"kind": "fashion-diffusion", "format_version": 1, "model": Exploit(marker)}, run / "checkpoints/step-0000009.pt")
    return run, marker


def test_resume_passes_over_a_hostile_newest_checkpoint_without_running_it(fake_data_dir, run_with_hostile_newest, train_main):
    run, marker = run_with_hostile_newest
    code, err = train_main(*cli_args(fake_data_dir, run, "--resume"))
    assert code == 0 and "finished at step 4" in err
    assert not marker.exists()


def test_resume_says_which_checkpoint_it_skipped(fake_data_dir, run_with_hostile_newest, train_main):
    run, marker = run_with_hostile_newest
    code, err = train_main(*cli_args(fake_data_dir, run, "--resume"))
    assert code == 0 and "step-0000009.pt is not a usable checkpoint" in err


def test_resume_refuses_a_huge_architecture_before_building_it(tmp_path, fake_data_dir, monkeypatch):
    import core.training.trainer

    run = tmp_path / "run"
    Trainer(run, config(), preset="tiny", data_dir=fake_data_dir).run()
    state = read_checkpoint(list_checkpoints(run)[-1])
    state["model_config"]["channels"] = [1024, 1024]  # ~1 GB of weights, declared by a 2 MB file
    for path in list_checkpoints(run):
        path.unlink()
    torch.save(state, run / "checkpoints/step-0000009.pt")
    real = core.training.trainer.Denoiser

    def guarded(model_config, diffusion_config):
        if torch.empty(0).device.type != "meta" and max(model_config.channels) > 256:
            raise AssertionError(f"built a {model_config.channels} network from a checkpoint without checking it")
        return real(model_config, diffusion_config)

    monkeypatch.setattr(core.training.trainer, "Denoiser", guarded)
    with pytest.raises(TrainingError, match="step-0000009.pt"):
        Trainer(run, config(), data_dir=fake_data_dir, resume=True)
