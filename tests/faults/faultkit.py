"""Shared helpers for the fault tests: real processes, real files, hostile inputs.

Imported as a plain module (pytest puts tests/faults on sys.path). It re-exports the helpers of
tests/support.py.

Two ways to run a CLI as a real process:
  * `run_cold` / `start_training`: a fresh `python ...` (about 3-4 s each: torch's import) for the
    tests where the process's own life matters: training that is killed, interrupted, resumed.
  * `cli` (a ForkServer): each call is still its own process with its own exit code, argv, cwd,
    environment and stderr, but forked from a server that has already imported torch, so the
    dozens of short "this input is refused" cases cost a fraction of a second each.

Child processes run with cwd in a temp folder (never the repo: a missing --run-dir must not reach
runs/default), OMP_NUM_THREADS=1, and COLUMNS=10000: rich, which fashion-train prints with, hard-wraps
at 80 columns when stderr is not a terminal (test_data_faults.py's xfail: that defect).
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TRAIN_CLI = REPO / "train_cli.py"
HOOKS = Path(__file__).resolve().parent / "hooks"  # sitecustomize.py: fault injection in child processes
SHIPPED_CLASSIFIER = REPO / "checkpoints" / "classifier.pt"
TRAIN = ("path", str(TRAIN_CLI))
TUI = ("module", "tui.cli")


from support import make_fake_dataset, make_tiny_checkpoint, write_idx  # noqa: E402,F401


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASHION_FAULTS_", "FASHION_TUI_", "PYTEST_"))}
    env["FASHION_TUI_CACHE_DIR"] = os.environ["FASHION_TUI_CACHE_DIR"]  # the session's measured choices (conftest), one for all
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO), COLUMNS="10000", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def assert_refused(result: Result, *fragments: str, prog: str = "fashion-tui") -> str:
    """Non-zero exit, no traceback, and stderr is exactly one line `PROG...: error: ...` holding every fragment."""
    assert result.rc not in (0, None), f"exit code {result.rc}; stderr: {result.stderr!r}"
    assert result.rc > 0, f"killed by signal {-result.rc}; stderr: {result.stderr!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.error_lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    line = result.error_lines[0]
    assert line.startswith(prog) and ": error: " in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def run_cold(argv: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> Result:
    """A fresh interpreter: `python ARGV...`."""
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env or child_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(done.returncode, done.stdout, done.stderr)


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("forkserver.py"))], cwd=REPO,
                                     env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready", "fork server did not start"
        self.scratch = Path(tempfile.mkdtemp(prefix="fashion-faults-"))
        self.count = 0
        atexit.register(self.close)

    def __call__(self, run: tuple[str, str], *argv: str, cwd: Path, env: dict | None = None, timeout: int = 120) -> Result:
        self.count += 1
        out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
        request = {"run": run, "argv": [str(a) for a in argv], "cwd": str(cwd), "env": env or child_env(),
                   "stdout": str(out), "stderr": str(err), "timeout": timeout}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, "fork server died"
        return Result(json.loads(reply)["rc"], out.read_text(), err.read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # this server only: we started it
                self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


_server: ForkServer | None = None


def cli(run: tuple[str, str], *argv, cwd: Path, env: dict | None = None, timeout: int = 120) -> Result:
    """Run `python -m tui.cli ARGV` (run=TUI) or `python train_cli.py ARGV` (run=TRAIN) as its own process."""
    global _server
    if _server is None:
        _server = ForkServer()
    return _server(run, *argv, cwd=cwd, env=env, timeout=timeout)


# ------------------------------------------------------------------ hostile and broken files

class Exploit:
    """Unpickling this calls open(marker, "w"): the marker file appearing means code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bad_checkpoints(folder: Path, good_generator: Path, marker: Path) -> dict[str, Path]:
    """Every kind of file that must be refused where a generator checkpoint is expected."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def put(name: str, obj) -> None:
        files[name] = folder / f"{name}.pt"
        torch.save(obj, files[name])

    put("hostile", {"kind": "fashion-diffusion", "format_version": 1, "model_config": Exploit(marker), "ema": {}})
    files["hostile-pickle"] = folder / "hostile-pickle.pt"  # not torch's zip format: a bare pickle stream
    files["hostile-pickle"].write_bytes(pickle.dumps({"kind": Exploit(marker)}, protocol=2))
    blob = good_generator.read_bytes()
    files["truncated"] = folder / "truncated.pt"
    files["truncated"].write_bytes(blob[: len(blob) * 2 // 3])
    files["empty"] = folder / "empty.pt"
    files["empty"].write_bytes(b"")
    files["directory"] = folder / "directory.pt"
    files["directory"].mkdir()
    good = torch.load(good_generator, weights_only=True)
    put("other-architecture", good | {"model_config": good["model_config"] | {"channels": [24, 48], "mid_attention": True}})
    put("wrong-shapes", good | {"ema": {k: torch.zeros(3) for k in good["ema"]}})
    # a small file describing a network of about a GB: refused from its shapes, before any of it is allocated
    put("huge-architecture", good | {"model_config": good["model_config"] | {"channels": [1024, 1024], "time_dim": 1024}})
    put("absurd-config", good | {"diffusion_config": good["diffusion_config"] | {"steps": 10**12}})
    files["classifier"] = SHIPPED_CLASSIFIER
    return files


# ------------------------------------------------------------------ training runs

def train_args(data_dir: Path, run_dir: Path, epochs: int, *extra: str) -> list[str]:
    return [str(TRAIN_CLI), "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--preset", "tiny", "--limit", "256",
            "--batch-size", "16", "--epochs", str(epochs), "--checkpoint-every", "3", "--log-every", "1", "--device", "cpu",
            "--no-progress", *extra]


@dataclass
class Training:
    """A running `python train_cli.py ...`; its output goes to files next to the run directory."""

    proc: subprocess.Popen
    log: Path

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)  # our own child, by its pid
        return self.proc.wait(timeout=120)

    def output(self) -> str:
        return self.log.read_text()


_trainings: list[Training] = []


def start_training(args: list[str], cwd: Path, log: Path, **env: str) -> Training:
    """`python ARGS` in the background; **env switches on hooks/sitecustomize.py's fault injection."""
    extra = {}
    if env:
        extra = dict(env, PYTHONPATH=os.pathsep.join([str(HOOKS), str(REPO)]))
    handle = open(log, "w")
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=child_env(**extra), stdin=subprocess.DEVNULL,
                            stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    _trainings.append(Training(proc, log))
    return _trainings[-1]


def stop_trainings() -> None:
    """Kill what start_training started and is still running (a failed test must not leave training behind)."""
    for training in _trainings:
        if training.proc.poll() is None:
            training.proc.kill()  # our own child, by its pid
            training.proc.wait()
    _trainings.clear()


atexit.register(stop_trainings)


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def last_step(run_dir: Path) -> int:
    """The last step metrics.jsonl has logged (a line being written right now is not counted)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().split("\n")[:-1]  # complete lines end with a newline
    return json.loads(lines[-1])["step"] if lines else 0


def wait_for(predicate, what: str, training: Training | None = None, timeout: float = 120, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if training is not None and training.proc.poll() is not None:
            raise AssertionError(f"training exited ({training.proc.returncode}) before {what}:\n{training.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)
