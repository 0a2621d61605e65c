"""The training step: no host reads between log records, precision, and torch.compile's plan and fallback."""

from __future__ import annotations

import json

import pytest
import torch

import core.training.step as step
from core.model.config import TrainConfig
from core.training.state import TrainingError
from core.training.trainer import Trainer
from support import make_fake_dataset, poison_loss

HOST_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")


def config(**overrides) -> TrainConfig:
    base = dict(epochs=1, batch_size=8, checkpoint_every=1000, log_every=8, sample_grid_per_class=0, seed=0,
                warmup_steps=2, compile=False)
    return TrainConfig(**(base | overrides))


@pytest.fixture
def data_256(tmp_path):
    return make_fake_dataset(tmp_path / "data", n_train=256)


def count_host_reads(monkeypatch) -> list[str]:
    """Every Python-level read of a tensor's value to the host, by name, from now on."""
    reads: list[str] = []
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def counting(self, *args, _real=real, _name=name, **kwargs):
            reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads


def test_a_step_reads_nothing_back_between_two_log_records(tmp_path, data_256, monkeypatch):
    at_log: list[int] = []
    reads: list[str] = []
    trainer = Trainer(tmp_path / "run", config(), preset="tiny", data_dir=data_256,
                      on_event=lambda e: at_log.append(len(reads)) if e.kind == "log" else None)
    reads = count_host_reads(monkeypatch)
    trainer.run()
    assert len(at_log) == 4  # 32 steps, a record every 8
    between = [b - a for a, b in zip(at_log, at_log[1:])]
    assert between == [1, 1, 1], reads  # eight steps and one read: the tally's, for the record itself


def test_a_nan_is_caught_at_the_next_read_and_never_reaches_a_checkpoint(tmp_path, data_256):
    trainer = Trainer(tmp_path / "run", config(checkpoint_every=8, log_every=4), preset="tiny", data_dir=data_256)
    poison_loss(trainer, 10, float("nan"))
    with pytest.raises(TrainingError) as info:
        trainer.run()
    assert "loss became nan at step 10" in str(info.value) and "step-0000008.pt" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["step-0000008.pt"]  # none at 12 or 16
    assert trainer.step == 12  # found at the read of step 12's record, the first after step 10


def test_compile_plan_compiles_only_where_it_pays(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(step, "compiler_missing", lambda device: None)
    assert step.compile_plan(None, cpu, step.COMPILE_MIN_IMAGES)[0]
    assert not step.compile_plan(None, cpu, step.COMPILE_MIN_IMAGES - 1)[0]
    assert step.compile_plan(True, cpu, 10)[0]  # asked for: compiled however short the run
    assert not step.compile_plan(False, cpu, 10**9)[0]
    monkeypatch.setattr(step, "compiler_missing", lambda device: "no C++ compiler found")
    on, why = step.compile_plan(True, cpu, 10**9)
    assert not on and "no C++ compiler" in why


def test_a_failed_compilation_trains_on_eagerly_with_the_same_numbers(tmp_path, data_256, monkeypatch):
    eager = Trainer(tmp_path / "eager", config(), preset="tiny", data_dir=data_256)
    eager.run()

    def broken_compile(module, **kwargs):
        def call(*args):
            torch.randn(3)  # a failure part-way may have drawn from the RNG already
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(step, "compiler_missing", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    notices = []
    fallback = Trainer(tmp_path / "fallback", config(compile=True), preset="tiny", data_dir=data_256,
                       on_event=lambda e: notices.append(e.data["message"]) if e.kind == "notice" else None)
    fallback.run()
    assert len(notices) == 1 and "torch.compile failed" in notices[0] and "\n" not in notices[0]
    assert fallback.step == eager.step == 32
    for a, b in zip(eager.ema.state_dict().values(), fallback.ema.state_dict().values()):
        assert torch.equal(a, b)
    info = json.loads((tmp_path / "fallback/run.json").read_text())
    assert info["compile"].startswith("off: failed") and info["state"] == "finished"


def test_compile_asked_for_where_it_cannot_work_says_so_once_and_trains(tmp_path, data_256, monkeypatch):
    monkeypatch.setattr(step, "compiler_missing", lambda device: "no C++ compiler found (set CXX or install g++)")
    notices = []
    trainer = Trainer(tmp_path / "run", config(compile=True, max_steps=4), preset="tiny", data_dir=data_256,
                      on_event=lambda e: notices.append(e.data["message"]) if e.kind == "notice" else None)
    assert trainer.runner.compiled is None
    trainer.run()
    assert notices == ["torch.compile off: no C++ compiler found (set CXX or install g++); training eagerly"]


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_the_precision_is_used_and_recorded(tmp_path, data_256, precision, monkeypatch):
    seen = []
    real_autocast = step.autocast
    monkeypatch.setattr(step, "autocast", lambda p, d: seen.append(p) or real_autocast(p, d))
    trainer = Trainer(tmp_path / "run", config(precision=precision, max_steps=8), preset="tiny", data_dir=data_256)
    result = trainer.run()
    assert set(seen) == {precision} and len(seen) == 8
    assert json.loads((tmp_path / "run/run.json").read_text())["precision"] == precision
    assert torch.isfinite(torch.tensor(json.loads(open(result["metrics"]).readlines()[-1])["loss"]))
