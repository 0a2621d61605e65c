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


class StepClock:
    """A fake clock for the compile trial: each training step advances it by what its module costs
    (eager_s or compiled_s); the first compiled call also costs compile_s."""

    def __init__(self, eager_s: float, compiled_s: float, compile_s: float = 60.0):
        self.now, self.eager_s, self.compiled_s, self.compile_s = 0.0, eager_s, compiled_s, compile_s
        self.compiled_calls, self.in_compiled = 0, False

    def fake_compile(self, module, **kwargs):
        clock = self

        def call(*args):
            clock.now += clock.compile_s if clock.compiled_calls == 0 else clock.compiled_s
            clock.compiled_calls += 1
            clock.in_compiled = True
            try:
                return module(*args)
            finally:
                clock.in_compiled = False
        return call

    def eager_cost(self, module):
        real = module.forward

        def forward(*args):
            if not self.in_compiled:
                self.now += self.eager_s
            return real(*args)
        module.forward = forward


def trial_trainer(tmp_path, data, clock: StepClock, monkeypatch, run="run", notices=None, **overrides) -> Trainer:
    """A tiny run long enough for the compile trial (2 warm-up, 3 + 1 + 3 timed steps) under `clock`."""
    monkeypatch.setattr(step, "compiler_missing", lambda device: None)
    monkeypatch.setattr(step, "COMPILE_MIN_IMAGES", 8)
    monkeypatch.setattr(step, "TRIAL_STEPS", 3)
    monkeypatch.setattr(torch, "compile", clock.fake_compile)
    trainer = Trainer(tmp_path / run, config(compile=None, **overrides), preset="tiny", data_dir=data,
                      on_event=lambda e: notices.append(e.data["message"]) if notices is not None and e.kind == "notice" else None)
    trainer.runner.timer = lambda: clock.now
    clock.eager_cost(trainer.runner.eager)
    return trainer


@pytest.mark.parametrize("eager_s,compiled_s,kept", [(0.4, 0.3, True), (0.4, 0.45, False), (0.4, 0.395, False)])
def test_auto_keeps_the_compiled_step_only_where_it_measured_faster(tmp_path, data_256, monkeypatch, eager_s, compiled_s, kept):
    from core import autotune

    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    clock, notices = StepClock(eager_s, compiled_s), []
    trainer = trial_trainer(tmp_path, data_256, clock, monkeypatch, notices=notices)
    assert trainer.runner.compiled is None and trainer.runner.reason.startswith("trial")
    trainer.run()
    measured = trainer.runner.measured
    assert measured["eager_ms"] == pytest.approx(eager_s * 1000) and measured["compiled_ms"] == pytest.approx(compiled_s * 1000)
    assert measured["compile_s"] == pytest.approx(60.0)
    assert (trainer.runner.compiled is not None) == kept
    calls_after_trial = 1 + 3  # the compiling call and the timed ones; kept: every later full batch too
    assert (clock.compiled_calls > calls_after_trial) == kept
    verdict = [n for n in notices if n.startswith("torch.compile ")]
    assert len(verdict) == 1 and verdict[0].startswith("torch.compile on (measured" if kept else "torch.compile off (measured")
    info = json.loads((tmp_path / "run/run.json").read_text())
    assert info["compile_measured"] == measured and info["compile"] == trainer.runner.reason


def test_a_resume_and_a_later_run_reuse_the_trial(tmp_path, data_256, monkeypatch):
    from core import autotune

    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    clock = StepClock(0.4, 0.45)
    first = trial_trainer(tmp_path, data_256, clock, monkeypatch, max_steps=16)
    first.run()
    measured = first.runner.measured
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "empty-cache"))  # the run's own record, not the cache
    resumed = Trainer(tmp_path / "run", config(compile=None, epochs=2), preset="tiny", data_dir=data_256, resume=True)
    assert resumed.runner.trial is None and resumed.runner.measured == measured and resumed.runner.compiled is None
    assert resumed.runner.reason.startswith("off (measured")
    # another run on this machine: the cache answers (its own run.json has nothing yet)
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    later = Trainer(tmp_path / "later", config(compile=None), preset="tiny", data_dir=data_256)
    assert later.runner.trial is None and later.runner.measured == measured
    # a machine whose cache says compiling pays compiles at once, if the run left earns it back
    autotune.remember("compile", autotune.machine_identity(), later.compile_work,
                      {"eager_ms": 400.0, "compiled_ms": 300.0, "compile_s": 2.0})
    pays = Trainer(tmp_path / "pays", config(compile=None), preset="tiny", data_dir=data_256)
    assert pays.runner.compiled is not None and pays.runner.reason.startswith("on (measured")


def test_the_run_left_is_counted_in_each_processs_steps():
    """Under torchrun each process takes 1/world_size of the images: 1,024,000 images in batches of 64
    on 2 processes are 8,000 steps each, 800 s saved against a 900 s compile: not worth it."""
    figures = {"eager_ms": 400.0, "compiled_ms": 300.0, "compile_s": 900.0}
    runner = lambda world: step.StepRunner(torch.nn.Linear(1, 1), TrainConfig(batch_size=64, compile=None), "fp32",
                                           torch.device("cpu"), notice=print, images_to_train=1_024_000, measured=figures,
                                           world_size=world)
    if step.compiler_missing(torch.device("cpu")):
        pytest.skip("no compiler here: the verdict is never reached")
    assert runner(1).compiled is not None  # 16,000 steps: 1,600 s saved
    shared = runner(2)
    assert shared.compiled is None and "8,000 steps left" in shared.reason


def test_verdict_counts_the_compile_against_the_run_left():
    figures = {"eager_ms": 400.0, "compiled_ms": 300.0, "compile_s": 90.0}
    assert step.verdict(figures, None)[0]  # the trial paid the compile already
    assert step.verdict(figures, 1000)[0]  # 0.1 s x 1000 steps = 100 s > 90 s
    on, why = step.verdict(figures, 800)  # 80 s < 90 s
    assert not on and "do not earn the compile back" in why
    assert not step.verdict({**figures, "compiled_ms": 450.0}, None)[0]
    assert not step.measured_figures({**figures, "compile_s": float("nan")})
    assert not step.measured_figures({"eager_ms": 400.0})
