"""Speed choices by measurement (core.autotune): the precision decision with a fake timer, the cache
(corrupt, foreign, stale files are ignored), forced settings, and the compile trial's verdict."""

from __future__ import annotations

import json

import pytest
import torch

from core import autotune
from core.autotune import PrecisionDecision, measured_precision, time_precisions
from core.device import resolve_precision


class FakeClock:
    """A timer whose calls take what `cost` says each precision takes: run(p) advances the clock."""

    def __init__(self, fp32_ms: float, bf16_ms: float):
        self.now, self.cost = 0.0, {"fp32": fp32_ms / 1000, "bf16": bf16_ms / 1000}
        self.calls: list[str] = []

    def timer(self) -> float:
        return self.now

    def run(self, precision: str) -> None:
        self.calls.append(precision)
        self.now += self.cost[precision]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_bf16_is_kept_only_where_it_is_clearly_faster():
    clock = FakeClock(fp32_ms=100, bf16_ms=50)
    decision = time_precisions(clock.run, repeats=3, timer=clock.timer)
    assert decision.precision == "bf16" and decision.fp32_ms == pytest.approx(100) and decision.bf16_ms == pytest.approx(50)
    assert decision.describe() == "bf16: measured 2x fp32 here"
    # one warm-up each, then alternating so that drift hits both alike
    assert clock.calls == ["fp32", "bf16"] + ["fp32", "bf16"] * 3
    slower = FakeClock(fp32_ms=95, bf16_ms=125)  # the Intel host of issue 37
    decision = time_precisions(slower.run, repeats=3, timer=slower.timer)
    assert decision.precision == "fp32" and decision.describe() == "fp32: bf16 measured 0.76x fp32 here"
    tie = FakeClock(fp32_ms=100, bf16_ms=95)  # 5% faster is not enough: fp32 is exact
    assert time_precisions(tie.run, repeats=3, timer=tie.timer).precision == "fp32"
    edge = FakeClock(fp32_ms=110, bf16_ms=100)
    assert time_precisions(edge.run, repeats=3, timer=edge.timer).precision == "bf16"


def test_the_median_decides_not_one_slow_call():
    times = iter([0.1, 0.05] + [0.1, 0.05, 0.1, 0.05, 0.1, 0.9, 0.1, 0.05, 0.1, 0.05])  # one bf16 hiccup
    clock = {"now": 0.0}

    def run(precision):
        clock["now"] += next(times)

    decision = time_precisions(run, repeats=5, timer=lambda: clock["now"])
    assert decision.precision == "bf16" and decision.bf16_ms == pytest.approx(50)


def test_a_decision_is_measured_once_then_read_back(cache_dir):
    clock = FakeClock(fp32_ms=100, bf16_ms=50)
    work = {"model": {"channels": [64, 128]}, "items": 16}
    first = measured_precision("sampling", work, clock.run, timer=clock.timer)
    assert not first.cached and first.precision == "bf16" and (cache_dir / autotune.CACHE_FILE).is_file()
    calls = len(clock.calls)
    again = measured_precision("sampling", work, clock.run, timer=clock.timer)
    assert again.cached and again.precision == "bf16" and len(clock.calls) == calls  # no new timing
    other = measured_precision("sampling", {**work, "items": 32}, clock.run, timer=clock.timer)
    assert not other.cached and len(clock.calls) > calls  # other work: timed on its own
    training = measured_precision("training", work, clock.run, timer=clock.timer)
    assert not training.cached


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"format": 99, "entries": {}}',
                                     b'{"format": 1, "entries": []}'])
def test_a_corrupt_cache_is_ignored_and_rewritten(cache_dir, content):
    cache_dir.mkdir(parents=True)
    (cache_dir / autotune.CACHE_FILE).write_bytes(content)
    clock = FakeClock(fp32_ms=100, bf16_ms=50)
    decision = measured_precision("sampling", {"items": 16}, clock.run, timer=clock.timer)
    assert not decision.cached and decision.precision == "bf16"
    assert json.loads((cache_dir / autotune.CACHE_FILE).read_text())["format"] == autotune.CACHE_FORMAT


def _poison(cache_dir, change) -> None:
    """Edit every entry of the cache file with change(entry)."""
    path = cache_dir / autotune.CACHE_FILE
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        change(entry)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change", [
    lambda e: e["machine"].update(cpu="Another CPU, family 6 model 207"),  # copied from another machine
    lambda e: e["machine"].update(torch="1.0.0"),  # written by another torch: stale
    lambda e: e["result"].update(precision="fp16"),
    lambda e: e["result"].update(bf16_ms=-1),
    lambda e: e["result"].update(fp32_ms="fast"),
    lambda e: e.update(result=None),
])
def test_a_foreign_stale_or_tampered_entry_is_never_trusted(cache_dir, change):
    slow_bf16 = FakeClock(fp32_ms=100, bf16_ms=150)
    measured_precision("sampling", {"items": 16}, slow_bf16.run, timer=slow_bf16.timer)
    _poison(cache_dir, lambda e: (e["result"].update(precision="bf16") if isinstance(e.get("result"), dict) else None,
                                  change(e)))
    decision = measured_precision("sampling", {"items": 16}, slow_bf16.run, timer=slow_bf16.timer)
    assert not decision.cached and decision.precision == "fp32"


def test_an_entry_for_this_machine_is_trusted(cache_dir):
    # the control for the test above: the same edit of the precision alone is read back as stored
    clock = FakeClock(fp32_ms=100, bf16_ms=150)
    measured_precision("sampling", {"items": 16}, clock.run, timer=clock.timer)
    _poison(cache_dir, lambda e: e["result"].update(precision="bf16"))
    assert measured_precision("sampling", {"items": 16}, clock.run, timer=clock.timer).precision == "bf16"


def test_an_unwritable_cache_only_costs_the_timing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(autotune.CACHE_ENV, str(blocker / "cache"))
    clock = FakeClock(fp32_ms=100, bf16_ms=50)
    assert measured_precision("sampling", {"items": 16}, clock.run, timer=clock.timer).precision == "bf16"


def test_forced_precisions_are_never_measured(monkeypatch):
    def never():
        raise AssertionError("measured")

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu, never) == ("fp32", "asked for")
    assert resolve_precision("bf16", cpu, never) == ("bf16", "asked for")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", cpu, never)


def test_auto_measures_only_a_cpu_with_native_bf16(monkeypatch):
    import core.device as device

    cpu = torch.device("cpu")
    decision = PrecisionDecision("fp32", 95.0, 125.0)
    monkeypatch.setattr(device, "native_bf16", lambda d: (True, "this CPU has AVX512-BF16"))
    assert resolve_precision("auto", cpu, lambda: decision) == ("fp32", "fp32: bf16 measured 0.76x fp32 here")
    monkeypatch.setattr(device, "native_bf16", lambda d: (False, "this CPU has no native bf16 (no AVX512-BF16 or AMX)"))
    assert resolve_precision("auto", cpu, lambda: PrecisionDecision("bf16", 100.0, 50.0))[0] == "fp32"


def test_the_app_and_the_cli_sample_at_the_measured_precision(trained, cache_dir, monkeypatch):
    """sampling_precision times the guided forward of the model at hand: bf16 where it measures
    faster, fp32 where it measures slower, and the request records what drew its pixels."""
    import core.device as device
    import core.sampling.samplers as samplers
    from core.sampling.request import SampleRequest

    monkeypatch.setattr(device, "native_bf16", lambda d: (True, "reported"))
    for fp32_ms, bf16_ms, expected in ((100, 40, "bf16"), (100, 140, "fp32")):
        clock = FakeClock(fp32_ms, bf16_ms)
        monkeypatch.setattr(autotune, "time_precisions", lambda run, timer=None, c=clock: _timed(run, c))
        monkeypatch.setenv(autotune.CACHE_ENV, str(cache_dir / expected))
        precision, why = samplers.sampling_precision(trained, "auto", torch.device("cpu"))
        assert precision == expected and why.startswith(f"{expected}: ")
        request = SampleRequest([1.0] + [0.0] * 9, n=2, steps=2, precision="auto")
        samplers.sample(trained, request)
        assert request.precision == expected


def _timed(run, clock: FakeClock) -> PrecisionDecision:
    """time_precisions with the fake clock's costs, after really running the model once each."""
    run("fp32")
    run("bf16")
    return time_precisions(clock.run, repeats=3, timer=clock.timer)
