"""Speed choices made by timing them on this machine, not inferred from CPU flags, and remembered.

Two hosts that report the same instructions can differ: AVX512-BF16 makes bf16 about 2x faster
than fp32 on one and 0.7x on another. So `auto` precision on a CPU that reports native bf16 times
the real work (the guided forward a sampler makes, or a training step's forward and backward) in
fp32 and in bf16, alternating so that drift hits both alike, and keeps bf16 only where it is at
least KEEP_BF16_AT as fast: fp32 is exact, so a tie goes to it. Compiling the training step is
decided by timing too (core.training.step.StepRunner), and its verdict is remembered here as well.

Decisions are cached in the user's cache directory under a key of the machine (CPU model, cores,
torch version) and the work (kind, model shape, batch): a later start reads the answer
instead of timing again. A cache that is unreadable, of another format or of another machine is
ignored, never trusted, and rewritten; a cache that cannot be written only costs the timing.
No torch at module level: the app's first frame and `--help` import what imports this.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .files import atomic_write_bytes

CACHE_ENV = "FASHION_TUI_CACHE_DIR"  # overrides where decisions are kept (tests point it at a temporary folder)
CACHE_FILE = "measured.json"
CACHE_FORMAT = 1
KEEP_BF16_AT = 1.10  # bf16 must take at most 1/1.10 of fp32's time to be kept
REPEATS = 5  # timed calls per precision, after one warm-up call each

Timer = Callable[[], float]


@dataclass(frozen=True)
class PrecisionDecision:
    """What timing fp32 against bf16 found: the median milliseconds of each and the precision kept."""

    precision: str  # "bf16" or "fp32"
    fp32_ms: float
    bf16_ms: float
    cached: bool = False  # read from the cache rather than timed in this process

    @property
    def speedup(self) -> float:
        """bf16's speed as a multiple of fp32's (above 1: bf16 is faster)."""
        return self.fp32_ms / self.bf16_ms

    def describe(self) -> str:
        """One line for where the precision is shown: 'bf16: measured 1.9x fp32 here'."""
        if self.precision == "bf16":
            return f"bf16: measured {self.speedup:.2g}x fp32 here"
        return f"fp32: bf16 measured {self.speedup:.2g}x fp32 here"

    def as_dict(self) -> dict:
        return {"precision": self.precision, "fp32_ms": self.fp32_ms, "bf16_ms": self.bf16_ms}

    @classmethod
    def from_dict(cls, data: object) -> "PrecisionDecision | None":
        """The decision a cache entry holds, or None where anything about it is off."""
        if not isinstance(data, dict) or data.get("precision") not in ("bf16", "fp32"):
            return None
        times = [data.get("fp32_ms"), data.get("bf16_ms")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in times):
            return None
        return cls(data["precision"], float(times[0]), float(times[1]), cached=True)


def cpu_model() -> str:
    """The CPU's name and model numbers as the kernel reports them ('AMD EPYC, family 25 model 17')."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "stepping", "CPU part", "CPU implementer") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break  # the first processor says it for all
    except OSError:
        pass
    name = fields.pop("model name", "") or platform.processor() or platform.machine()
    return ", ".join([name] + [f"{k} {v}" for k, v in sorted(fields.items())])


def machine_identity() -> dict:
    """What makes timings on one machine stand for another run on it. Not the thread count: bf16's
    gain is per core (16 items: 1.62x on two threads, 1.68x on one), and one verdict per machine
    keeps a run with --threads drawing the pixels of one without."""
    import torch

    return {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count() or 1, "torch": torch.__version__}


def cache_path() -> Path:
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "fashion-tui")
    return Path(folder) / CACHE_FILE


def _entry_key(kind: str, machine: dict, work: dict) -> str:
    text = json.dumps({"kind": kind, "machine": machine, "work": work}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict:
    """The cache's entries, or {} where the file is missing, unreadable or of another format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def cached(kind: str, machine: dict, work: dict) -> dict | None:
    """The result stored for this kind of work on this machine, or None. An entry must repeat the
    machine and work it was measured for: a file copied from another machine finds nothing."""
    entry = _read_cache(cache_path()).get(_entry_key(kind, machine, work))
    if not isinstance(entry, dict) or entry.get("machine") != machine or entry.get("work") != work:
        return None
    result = entry.get("result")
    return result if isinstance(result, dict) else None


def remember(kind: str, machine: dict, work: dict, result: dict) -> None:
    """Store a result for later runs; a cache that cannot be written is left alone (the next start
    times again)."""
    path = cache_path()
    entries = _read_cache(path)
    entries[_entry_key(kind, machine, work)] = {"kind": kind, "machine": machine, "work": work, "result": result,
                                               "measured_at": time.time()}
    try:
        atomic_write_bytes(json.dumps({"format": CACHE_FORMAT, "entries": entries}, indent=1).encode(), path)
    except OSError:
        pass


def time_precisions(run: Callable[[str], None], repeats: int = REPEATS, timer: Timer = time.perf_counter) -> PrecisionDecision:
    """Time run("fp32") against run("bf16"): one warm-up call each (the first call builds kernels),
    then `repeats` of each, alternating; the medians decide."""
    run("fp32")
    run("bf16")
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision in ("fp32", "bf16"):
            start = timer()
            run(precision)
            seconds[precision].append(timer() - start)
    fp32, bf16 = (max(1e-9, statistics.median(seconds[p])) * 1000 for p in ("fp32", "bf16"))
    return PrecisionDecision("bf16" if fp32 / bf16 >= KEEP_BF16_AT else "fp32", fp32, bf16)


def measured_precision(kind: str, work: dict, run: Callable[[str], None], timer: Timer = time.perf_counter) -> PrecisionDecision:
    """The cached decision for this kind of work on this machine, else a timed one (then cached).
    kind: "sampling" or "training"; work: what shapes the timing (model config, rows, batch)."""
    machine = machine_identity()
    decision = PrecisionDecision.from_dict(cached(kind, machine, work))
    if decision is not None:
        return decision
    decision = time_precisions(run, timer=timer)
    remember(kind, machine, work, decision.as_dict())
    return decision
