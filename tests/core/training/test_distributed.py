"""Distributed training: real `torchrun --nproc_per_node=2` runs on CPU (gloo), plus the cheap in-process parts.

The torchrun runs share one tiny dataset (256 images, preset tiny, batch 16 per process, so
8 steps per epoch with 2 processes) and take about 10 s each on a 2-core machine.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support import REPO, make_fake_dataset, read_tensorboard
from core.training import distributed
from core.checkpoint import read_checkpoint
from core.model.config import PRESETS, DiffusionConfig, TrainConfig
from core.model.diffusion import DiffusionObjective
from core.model.denoiser import Denoiser
from core.training.trainer import Trainer
from core.training.state import TrainingError
from core.training.rundir import list_checkpoints

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TRAIN_ARGS = ["--preset", "tiny", "--limit", "256", "--batch-size", "16", "--device", "cpu", "--no-progress", "--log-every", "1"]
TIMEOUT = 120  # a hang (deadlocked ranks) fails the test instead of blocking the suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}", script, *args]


def run(cmd: list[str], **env) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=REPO, env={**ENV, **env}, capture_output=True, text=True, timeout=TIMEOUT)
    return result


def metric_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(dump_dir: Path) -> dict:
    a, b = (torch.load(dump_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (a["rank"], b["rank"]) == (0, 1) and a["step"] == b["step"]
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs between ranks"
    return a


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_fake_dataset(tmp_path_factory.mktemp("ddp") / "data", n_train=256, n_test=10)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, data_dir):
    """One epoch with 2 processes, with TensorBoard event files; every rank dumps its final weights."""
    root = tmp_path_factory.mktemp("two")
    result = run(torchrun("train_cli.py", *TRAIN_ARGS, "--epochs", "1", "--data-dir", str(data_dir),
                          "--run-dir", str(root / "run"), "--tensorboard"), FASHION_TUI_DUMP_WEIGHTS_DIR=str(root / "dump"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result


# ----------------------------------------------------------------- torchrun, 2 processes
def test_two_processes_train_in_step_and_only_rank0_writes(two_process_run):
    root, result = two_process_run
    run_dir = root / "run"
    final = assert_same_weights(root / "dump")  # DDP all-reduced every gradient; EMA followed the same weights
    assert final["step"] == 8  # 256 images / (16 x 2) per step
    torch.manual_seed(0)
    initial = Denoiser(PRESETS["tiny"].model, PRESETS["tiny"].diffusion).state_dict()
    assert any(not torch.equal(initial[k], final["model"][k]) for k in initial)  # it did train

    assert metric_steps(run_dir) == list(range(1, 9))  # one line per step, none from rank 1
    info = json.loads((run_dir / "run.json").read_text())
    assert info["state"] == "finished" and info["world_size"] == 2 and info["global_batch"] == 32
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-0000008.pt"]
    state = read_checkpoint(list_checkpoints(run_dir)[-1])
    assert state["world_size"] == 2 and state["epoch"] == 1 and state["images_into_epoch"] == 0
    assert [p.name for p in (run_dir / "samples").iterdir()] == ["epoch-001.png"]
    assert len(list((run_dir / "tb").iterdir())) == 1  # rank 0's event file alone
    assert [e.step for e in read_tensorboard(run_dir / "tb").Scalars("train/loss")] == list(range(1, 9))
    output = result.stdout + result.stderr
    assert "global batch 32 = 16 x 2 process(es)" in output
    assert output.count("finished at step 8") == 1  # rank 0 alone reports


def test_two_process_checkpoint_resumes_in_one_process(two_process_run, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_process_run[0] / "run", run_dir)
    result = run([sys.executable, "train_cli.py", *TRAIN_ARGS, "--epochs", "2", "--resume", "--data-dir", str(data_dir),
                  "--run-dir", str(run_dir)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # epoch 1 was 8 steps of 32 images; epoch 2 is 16 steps of 16 images with one process
    assert metric_steps(run_dir) == list(range(1, 25))
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == pytest.approx(2.0)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["state"] == "finished" and info["world_size"] == 1 and info["global_batch"] == 16
    assert read_checkpoint(list_checkpoints(run_dir)[-1])["step"] == 24


def test_one_process_checkpoint_resumes_with_two_and_sigterm_stops_every_rank(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    # one process stops mid-epoch after 5 steps (80 images into epoch 0)
    Trainer(run_dir, TrainConfig(epochs=1, batch_size=16, limit=256, max_steps=5, device="cpu", log_every=1,
                                 sample_grid_per_class=0), preset="tiny", data_dir=data_dir).run()
    cmd = torchrun("train_cli.py", *TRAIN_ARGS, "--epochs", "100", "--resume", "--data-dir", str(data_dir),
                   "--run-dir", str(run_dir))
    proc = subprocess.Popen(cmd, cwd=REPO, env={**ENV, "FASHION_TUI_DUMP_WEIGHTS_DIR": str(tmp_path / "dump")},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if max(metric_steps(run_dir)) >= 8:  # resumed, and trained a few distributed steps
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both workers
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["state"] == "stopped" and info["world_size"] == 2, output[-3000:]
    steps = metric_steps(run_dir)
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] < 5 + 100 * 8
    state = read_checkpoint(list_checkpoints(run_dir)[-1])
    assert state["step"] == steps[-1] and state["world_size"] == 2  # rank 0 saved where every rank stopped
    final = assert_same_weights(tmp_path / "dump")
    assert final["step"] == steps[-1]
    assert "stopped by SIGTERM" in output


def test_nan_on_one_rank_stops_every_rank(data_dir, tmp_path):
    script = tmp_path / "nan_on_rank1.py"
    script.write_text(f"""
import sys
from pathlib import Path
from core.model.config import TrainConfig
from core.training.distributed import init_distributed, shutdown_distributed
from core.training.trainer import Trainer
from core.training.state import TrainingError

info = init_distributed("cpu")
trainer = Trainer({str(tmp_path / 'run')!r}, TrainConfig(epochs=1, batch_size=16, limit=256, device="cpu", log_every=1,
                  sample_grid_per_class=0), preset="tiny", data_dir={str(data_dir)!r}, rank=info.rank, world_size=info.world_size)
real, calls = trainer.runner.eager, []

def poisoned(x0, weights):
    calls.append(1)
    loss = real(x0, weights)
    return loss * float("nan") if info.rank == 1 and len(calls) == 3 else loss

trainer.runner.eager = poisoned
try:
    trainer.run()
    outcome = "finished"
except TrainingError as error:
    outcome = str(error)
del real  # this script's own hold on the DDP-wrapped step
trainer.close()  # as train_cli.py does: DDP lets go of the process group before it is destroyed
import gc
from torch.nn.parallel import DistributedDataParallel
if any(isinstance(o, DistributedDataParallel) for o in gc.get_objects()):
    outcome = "a DistributedDataParallel wrapper outlived trainer.close()"
Path({str(tmp_path)!r}, f"rank{{info.rank}}.txt").write_text(outcome)
shutdown_distributed()
""")
    result = run(torchrun(str(script)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text().startswith("loss became nan at step 3")
    assert json.loads((tmp_path / "run/run.json").read_text())["state"] == "failed"
    assert metric_steps(tmp_path / "run") == [1, 2]


# ----------------------------------------------------------------- in-process
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("cfg_dropout", [0.0, 1.0])
def test_every_parameter_gets_a_gradient_every_step(preset, cfg_dropout):
    """What lets DDP run without find_unused_parameters: no parameter ever sits out a step
    (the CFG null embedding too, whether no item or every item is dropped)."""
    diffusion = DiffusionConfig(**{**PRESETS[preset].diffusion.__dict__, "cfg_dropout": cfg_dropout})
    torch.manual_seed(0)
    objective = DiffusionObjective(Denoiser(PRESETS[preset].model, diffusion), diffusion)
    objective(torch.randn(2, 1, 28, 28), torch.eye(10)[:2]).backward()
    assert [n for n, p in objective.named_parameters() if p.requires_grad and p.grad is None] == []


def test_init_distributed_without_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_distributed("cpu").world_size == 1 and not distributed.is_initialized()
    distributed.shutdown_distributed()  # nothing to shut down: no error
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT not set: launch with torchrun"):
        distributed.init_distributed("cpu")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="bad RANK"):
        distributed.init_distributed("cpu")


def test_trainer_with_world_size_2_needs_a_process_group(tmp_path, data_dir):
    with pytest.raises(TrainingError, match="torchrun"):
        Trainer(tmp_path / "r", TrainConfig(device="cpu"), preset="tiny", data_dir=data_dir, rank=0, world_size=2)


def test_resume_with_another_global_batch_restarts_at_the_same_image(tmp_path, data_dir):
    """The checkpoint holds its place in the epoch in images, so the step grid may change (here the
    batch size, as a changed process count does): 5 steps x 16 = 80 images = 10 steps x 8."""
    base = dict(epochs=2, limit=64, device="cpu", log_every=1, sample_grid_per_class=0)
    Trainer(tmp_path / "r", TrainConfig(batch_size=16, max_steps=5, **base), preset="tiny", data_dir=data_dir).run()
    resumed = Trainer(tmp_path / "r", TrainConfig(batch_size=8, **base), data_dir=data_dir, resume=True)
    assert (resumed.step, resumed.start_epoch, resumed.start_in_epoch) == (5, 1, 2)  # 16 images into epoch 1
    assert resumed.total_steps == 5 + 8 - 2  # the rest of epoch 1 at 8 images a step
    assert resumed.run()["step"] == 11
    assert metric_steps(tmp_path / "r") == list(range(1, 12))
