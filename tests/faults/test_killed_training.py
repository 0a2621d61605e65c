"""Killed training: a real `train_cli.py` SIGKILLed at random moments and once mid-checkpoint, then resumed.

One run (module fixture) shared by the tests below: start, kill, resume, kill, ... finish. Each test
asserts one promise about it: nothing half-written, at most one checkpoint interval lost, temp files
ignored, and the resumed run ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from core.checkpoint import CheckpointError, read_checkpoint
from core.model.config import TrainConfig
from core.training.trainer import Trainer
from core.training.rundir import list_checkpoints
from faultkit import last_step, make_fake_dataset, read_metrics, start_training, stop_trainings, train_args, wait_for

SEED = 20241125  # the kill moments come from random.Random(SEED): the same moments every run
EPOCHS, STEPS_PER_EPOCH, INTERVAL = 2, 16, 3  # 256 images / batch 16; --checkpoint-every 3
TOTAL = EPOCHS * STEPS_PER_EPOCH
PLAN = ["random", "mid-checkpoint", "random"]  # then a last --resume that runs to the end

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the mid-checkpoint kill finds temp files via /proc")


@dataclass
class Kill:
    how: str
    rc: int
    resumed_from: int  # newest complete checkpoint when this process started (0: fresh run)
    first_new_step: int | None  # first step this process logged
    last_logged: int  # last step in metrics.jsonl when it died
    newest_complete: int  # newest step-*.pt after it died: where the next --resume starts
    checkpoints: dict[str, int] = field(default_factory=dict)  # every step-*.pt after it died -> its stored step
    temp_files: list[str] = field(default_factory=list)


@dataclass
class KilledRun:
    run_dir: Path
    kills: list[Kill]
    final_rc: int
    final_output: str
    final_first_step: int | None


def _checkpoint_steps(run_dir: Path) -> dict[str, int | str]:
    """step-*.pt -> the step stored in it, or why it does not load (read_checkpoint: the loader resume uses)."""
    found = {}
    for path in list_checkpoints(run_dir):
        try:
            found[path.name] = int(read_checkpoint(path)["step"])
        except CheckpointError as error:
            found[path.name] = str(error)
    return found


def _temp_files(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.is_dir() else []


def _newest(run_dir: Path) -> int:
    found = list_checkpoints(run_dir)
    return int(found[-1].name[5:12]) if found else 0


def _lines_kept_on_resume(run_dir: Path) -> int:
    """metrics.jsonl lines a --resume keeps (it drops the steps past the newest complete checkpoint)."""
    newest = _newest(run_dir)
    return sum(1 for line in read_metrics(run_dir) if line["step"] <= newest)


def _first_step_since(run_dir: Path, lines_before: int) -> int | None:
    lines = read_metrics(run_dir)
    return lines[lines_before]["step"] if len(lines) > lines_before else None


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> KilledRun:
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("killed")
    data = make_fake_dataset(root / "data", n_train=256, n_test=10)
    run_dir = root / "run"
    try:
        return _kill_and_resume(rng, root, run_dir, train_args(data, run_dir, EPOCHS))
    finally:
        stop_trainings()


def _kill_and_resume(rng: random.Random, root: Path, run_dir: Path, args: list[str]) -> KilledRun:
    kills = []
    for number, how in enumerate(PLAN):
        resumed_from, lines_before = _newest(run_dir), _lines_kept_on_resume(run_dir)
        env = {"FASHION_FAULTS_SLOW_CHECKPOINT_FSYNC": "3"} if how == "mid-checkpoint" else {}
        training = start_training(args + (["--resume"] if number else []), root, root / f"kill-{number}.log", **env)
        if how == "random":
            # a random step past the first checkpoint, then a random fraction of a step's time
            target = min(TOTAL - 2, max(resumed_from, INTERVAL) + rng.randint(2, 9))
            wait_for(lambda: last_step(run_dir) >= target, f"step {target}", training)
            time.sleep(rng.uniform(0.0, 0.05))
        else:
            # the moment a checkpoint temp file appears; the hook holds the write open there for 3 s
            wait_for(lambda: any(n.startswith(".step-") for n in _temp_files(run_dir)), "a checkpoint temp file",
                     training, poll=0.005)
        rc = training.kill(signal.SIGKILL)
        kills.append(Kill(how, rc, resumed_from, _first_step_since(run_dir, lines_before), last_step(run_dir),
                          _newest(run_dir), _checkpoint_steps(run_dir), _temp_files(run_dir)))
    lines_before = _lines_kept_on_resume(run_dir)
    final = start_training(args + ["--resume"], root, root / "final.log")
    final_rc = final.wait(timeout=300)
    return KilledRun(run_dir, kills, final_rc, final.output(), _first_step_since(run_dir, lines_before))


def test_every_kill_leaves_only_complete_readable_checkpoints(killed_run):
    for kill in killed_run.kills:
        assert kill.rc == -signal.SIGKILL, kill
        assert kill.checkpoints, f"no checkpoint survived the {kill.how} kill"
        for name, step in kill.checkpoints.items():  # loaded, and holds the step its name says
            assert isinstance(step, int) and name == f"step-{step:07d}.pt", (name, step)


def test_the_mid_checkpoint_kill_really_hit_a_write_in_progress(killed_run):
    (kill,) = [k for k in killed_run.kills if k.how == "mid-checkpoint"]
    # the temp file of the interrupted write is still there, and its step never appeared as step-*.pt
    leftover = [n for n in kill.temp_files if n.startswith(".step-")]
    assert leftover, kill
    interrupted_step = int(leftover[0][len(".step-"):][:7])
    assert interrupted_step > kill.newest_complete
    assert f"step-{interrupted_step:07d}.pt" not in kill.checkpoints


def test_resume_starts_at_the_last_complete_checkpoint_and_loses_at_most_one_interval(killed_run):
    kills = killed_run.kills
    for before, after in zip(kills, kills[1:] + [None]):
        lost = before.last_logged - before.newest_complete
        assert 0 <= lost <= INTERVAL, f"{before.how} kill lost {lost} steps: {before}"
        first = after.first_new_step if after is not None else killed_run.final_first_step
        assert first == before.newest_complete + 1, (before, after)
    assert kills[1].resumed_from == kills[0].newest_complete


def test_the_resumed_run_finishes_and_ignores_temp_files(killed_run):
    assert killed_run.final_rc == 0, killed_run.final_output
    assert f"finished at step {TOTAL}" in killed_run.final_output
    steps = _checkpoint_steps(killed_run.run_dir)
    assert all(isinstance(step, int) for step in steps.values()), steps
    assert max(steps.values()) == TOTAL
    assert _temp_files(killed_run.run_dir), "the interrupted write's temp file should still be there (and ignored)"
    assert all(not name.endswith(".tmp") for name in steps)


def test_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(killed_run, tmp_path):
    # the same settings train_cli.py builds from the flags above (every other flag at its default);
    # sample grids only read the EMA weights and draw from their own generators, so they are left out here
    config = TrainConfig(epochs=EPOCHS, batch_size=16, limit=256, checkpoint_every=INTERVAL, log_every=1, device="cpu",
                         sample_grid_per_class=0)
    straight = Trainer(tmp_path / "straight", config, preset="tiny", data_dir=killed_run.run_dir.parent / "data")
    assert straight.run()["step"] == TOTAL
    final = read_checkpoint(list_checkpoints(killed_run.run_dir)[-1])
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(final["model"][key], value, atol=1e-6), key
    for key, value in straight.ema.state_dict().items():
        assert torch.allclose(final["ema"][key], value, atol=1e-6), key


def test_metrics_log_each_step_once_after_kills(killed_run):
    steps = [line["step"] for line in read_metrics(killed_run.run_dir)]
    assert steps == list(range(1, TOTAL + 1))
