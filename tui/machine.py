"""The machine a run trains on, read without touching the trainer: CPU use and the trainer's resident
memory from /proc, GPU utilisation and memory from NVML where the nvidia-ml-py package is installed
(`import pynvml`), or torch.cuda's memory counters for a training in this very process. The
monitor's worker polls a MachineWatch on a timer; nothing here runs in the trainer's thread, and
nothing here raises on a process that has gone or a /proc that is not there.

No Textual, and torch only when this process has loaded it already (an in-app training).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

HISTORY = 720  # readings kept for the machine chart: an hour at one every 5 s, 12 minutes at 1 s
GIB = 2**30


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilisation: float | None  # % of the last sample period the GPU was busy (NVML only)
    used: int | None  # bytes
    total: int | None


@dataclass(frozen=True)
class MachineReading:
    time: float  # time.monotonic() when read
    cores: int
    machine_cpu: float | None  # % of all cores busy since the previous reading
    trainer_cpu: float | None  # % of one core the trainer's process used since the previous reading
    trainer_rss: int | None  # bytes resident
    gpus: tuple[GpuReading, ...] = ()
    note: str = ""  # what could not be read, in words


def gpu_index(device: str) -> int | None:
    """The CUDA index run.json's device names ("cuda" is 0, "cuda:1" is 1), None for other devices."""
    if not isinstance(device, str) or not device.startswith("cuda"):
        return None
    try:
        return int(device.partition(":")[2] or 0)
    except ValueError:
        return None


class MachineWatch:
    def __init__(self, proc: Path = Path("/proc")):
        self.proc = proc
        self.history: deque[MachineReading] = deque(maxlen=HISTORY)
        self._machine_before: tuple[int, int] | None = None  # (total, idle) clock ticks of /proc/stat
        self._trainer_before: tuple[int, int, float] | None = None  # (pid, busy ticks, monotonic time)
        self._nvml = None  # the pynvml module once initialised, False where it cannot be
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _machine_cpu(self) -> float | None:
        try:
            fields = (self.proc / "stat").read_text().split("\n", 1)[0].split()[1:9]
            ticks = [int(v) for v in fields]
        except (OSError, ValueError, IndexError):
            return None
        total, idle = sum(ticks), ticks[3] + ticks[4]  # idle + iowait
        before, self._machine_before = self._machine_before, (total, idle)
        if before is None or total <= before[0]:
            return None
        return 100.0 * (1 - (idle - before[1]) / (total - before[0]))

    def _trainer(self, pid: int | None, now: float) -> tuple[float | None, int | None]:
        """(% of one core since the previous reading, resident bytes) of process pid."""
        if not pid:
            self._trainer_before = None
            return None, None
        try:
            stat = (self.proc / str(pid) / "stat").read_text()
            rest = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
            busy = int(rest[11]) + int(rest[12])  # utime + stime
            rss = None
            for line in (self.proc / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            self._trainer_before = None
            return None, None
        before, self._trainer_before = self._trainer_before, (pid, busy, now)
        if before is None or before[0] != pid or now <= before[2]:
            return None, rss
        return 100.0 * (busy - before[1]) / self._ticks / (now - before[2]), rss

    def _gpus(self, index: int | None, in_process: bool) -> tuple[tuple[GpuReading, ...], str]:
        if index is None:
            return (), ""
        if self._nvml is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:  # not installed, no driver, no GPU: fall back below
                self._nvml = False
        if self._nvml:
            try:
                nvml = self._nvml
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                name = name.decode() if isinstance(name, bytes) else str(name)
                return (GpuReading(index, name, float(busy), int(memory.used), int(memory.total)),), ""
            except Exception as error:
                return (), f"NVML: {error}"
        torch = sys.modules.get("torch")  # only an in-app training has it loaded; never load it for this
        if in_process and torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            try:
                total = torch.cuda.get_device_properties(index).total_memory
                reading = GpuReading(index, torch.cuda.get_device_name(index), None,
                                     int(torch.cuda.memory_reserved(index)), int(total))
                return (reading,), "GPU utilisation needs NVML (pip install nvidia-ml-py)"
            except Exception as error:
                return (), f"torch.cuda: {error}"
        return (), "GPU figures need NVML (pip install nvidia-ml-py)"

    def poll(self, pid, device: str = "") -> MachineReading:
        """A reading for the trainer's process `pid` (run.json's pid; None when unknown) on `device`."""
        now = time.monotonic()
        try:
            pid = int(pid) if pid else None
        except (TypeError, ValueError):
            pid = None
        trainer_cpu, rss = self._trainer(pid, now)
        gpus, note = self._gpus(gpu_index(device), pid == os.getpid())
        if pid and rss is None:
            note = f"trainer process {pid} not running here" + (f"; {note}" if note else "")
        reading = MachineReading(now, os.cpu_count() or 1, self._machine_cpu(), trainer_cpu, rss, gpus, note)
        self.history.append(reading)
        return reading


def describe(reading: MachineReading | None, device: str = "") -> str:
    """One line: device, GPU utilisation and memory, CPU use, the trainer's resident memory."""
    if reading is None:
        return "machine: reading…"
    parts = [device or "device ?"]
    for gpu in reading.gpus:
        busy = f"GPU {gpu.utilisation:.0f}%" if gpu.utilisation is not None else "GPU"
        memory = f" {gpu.used / GIB:.1f}/{gpu.total / GIB:.0f} GB" if gpu.used is not None and gpu.total else ""
        parts.append(busy + memory)
    if reading.machine_cpu is not None:
        parts.append(f"machine {reading.machine_cpu * reading.cores / 100:.1f} of {reading.cores} cores busy")
    trainer = [f"{reading.trainer_cpu / 100:.1f} cores"] if reading.trainer_cpu is not None else []
    trainer += [f"{reading.trainer_rss / GIB:.2f} GB resident"] if reading.trainer_rss is not None else []
    if trainer:
        parts.append("trainer " + ", ".join(trainer))
    return " · ".join(parts) + (f" · {reading.note}" if reading.note else "")
