"""The machine panel's readings: CPU and resident memory from /proc, GPUs from NVML, never an error."""

from __future__ import annotations

import os
import sys
import types

from tui.machine import GIB, MachineWatch, describe, gpu_index


def write_proc(root, total_ticks: int, idle_ticks: int, pid: int, busy_ticks: int, rss_kb: int) -> None:
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    user = total_ticks - idle_ticks
    (root / "stat").write_text(f"cpu  {user} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    fields = ["S", "1"] + ["0"] * 9 + [str(busy_ticks // 2), str(busy_ticks - busy_ticks // 2)] + ["0"] * 30
    (root / str(pid) / "stat").write_text(f"{pid} (python (train) x) " + " ".join(fields) + "\n")
    (root / str(pid) / "status").write_text(f"Name:\tpython\nVmRSS:\t  {rss_kb} kB\nThreads:\t4\n")


def test_cpu_use_and_resident_memory_from_proc(tmp_path, monkeypatch):
    watch = MachineWatch(tmp_path)
    ticks = watch._ticks
    write_proc(tmp_path, 1000, 600, 4242, 100, 2 * 1024 * 1024)
    first = watch.poll(4242, "cpu")
    assert first.machine_cpu is None and first.trainer_cpu is None and first.trainer_rss == 2 * GIB  # no delta yet
    write_proc(tmp_path, 2000, 1100, 4242, 100 + ticks, 3 * 1024 * 1024)  # 1000 ticks, 500 idle; one second busy
    second = watch.poll(4242, "cpu")
    assert abs(second.machine_cpu - 50.0) < 1e-9 and second.trainer_rss == 3 * GIB
    elapsed = second.time - first.time
    assert abs(second.trainer_cpu - 100.0 / elapsed) < 1e-6  # % of one core over the readings' interval
    assert "trainer" in describe(second, "cpu") and "3.00 GB resident" in describe(second, "cpu")
    assert len(watch.history) == 2


def test_a_gone_process_and_a_missing_proc_are_notes(tmp_path):
    reading = MachineWatch(tmp_path / "no-proc").poll(999_999, "cpu")
    assert reading.trainer_rss is None and reading.machine_cpu is None and "not running here" in reading.note
    assert MachineWatch(tmp_path).poll("not a pid").note == ""


def test_gpus_from_nvml_where_it_is_installed(tmp_path, monkeypatch):
    calls = []
    nvml = types.SimpleNamespace(
        nvmlInit=lambda: calls.append("init"),
        nvmlDeviceGetHandleByIndex=lambda index: ("handle", index),
        nvmlDeviceGetName=lambda handle: b"NVIDIA H200",
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(used=12 * GIB, total=140 * GIB),
        nvmlDeviceGetUtilizationRates=lambda handle: types.SimpleNamespace(gpu=97))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    watch = MachineWatch(tmp_path)
    reading = watch.poll(os.getpid(), "cuda:1")
    watch.poll(os.getpid(), "cuda:1")
    assert calls == ["init"]  # initialised once
    (gpu,) = reading.gpus
    assert (gpu.index, gpu.name, gpu.utilisation, gpu.used) == (1, "NVIDIA H200", 97.0, 12 * GIB)
    assert "GPU 97% 12.0/140 GB" in describe(reading, "cuda:1")
    assert gpu_index("cuda") == 0 and gpu_index("cpu") is None and gpu_index("cuda:x") is None


def test_without_nvml_a_gpu_run_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    reading = MachineWatch(tmp_path).poll(os.getpid(), "cuda")
    assert reading.gpus == () and "nvidia-ml-py" in reading.note
