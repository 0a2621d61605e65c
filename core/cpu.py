"""CPU settings every entry point applies before torch is imported (no torch here)."""

from __future__ import annotations

import os


def prefer_passive_openmp() -> None:
    """OpenMP threads that spin while they wait turn a busy 2-core machine (training in one SSH
    session, sampling in another) into a 5-10x slowdown. Waiting passively avoids that for some
    speed on an idle machine (16 items of a 2-class mix on 2 threads: ~0.68 s against ~0.5 s
    spinning, bench/benchmark.py). A policy the user set is kept. Must run before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
