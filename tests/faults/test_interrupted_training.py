"""Interrupted training: SIGINT (Ctrl-C) or SIGTERM make a real `train_cli.py` save a checkpoint, say where, and exit."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from core.checkpoint import read_checkpoint
from faultkit import last_step, make_fake_dataset, read_metrics, start_training, stop_trainings, train_args, wait_for


def test_sigint_and_sigterm_save_a_checkpoint_and_say_where(tmp_path):
    data = make_fake_dataset(tmp_path / "data", n_train=256, n_test=10)
    runs = {sig: tmp_path / f"run-{sig.name}" for sig in (signal.SIGINT, signal.SIGTERM)}
    # both at once (they are independent processes); --checkpoint-every far away, so the stop's own checkpoint is tested
    trainings = {sig: start_training(train_args(data, run, 50, "--checkpoint-every", "1000"), tmp_path,
                                     tmp_path / f"{sig.name}.log")
                 for sig, run in runs.items()}
    try:
        for sig, training in trainings.items():
            wait_for(lambda: last_step(runs[sig]) >= 5, "step 5", training)
            training.proc.send_signal(sig)  # our own child, by its pid
        codes = {sig: training.wait(timeout=120) for sig, training in trainings.items()}
    finally:
        stop_trainings()
    for sig, training in trainings.items():
        rc, output, run = codes[sig], training.output(), runs[sig]
        assert rc == 130, output
        assert "Traceback" not in output, output
        match = re.search(rf"stopped by {sig.name} at step (\d+); checkpoint saved: (\S+) \(continue with --resume --run-dir (\S+)\)",
                          output)
        assert match, output
        step, path, resume_dir = int(match[1]), Path(match[2]), Path(match[3])
        assert resume_dir == run
        assert path.parent == run / "checkpoints" and path.is_file()
        assert read_checkpoint(path)["step"] == step == read_metrics(run)[-1]["step"]  # nothing after the last logged step
        assert json.loads((run / "run.json").read_text())["state"] == "stopped"
