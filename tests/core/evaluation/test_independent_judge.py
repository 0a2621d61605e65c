"""bench/independent_judge.py on tiny inputs: its rows scored by the shipped classifier are what
`fashion-tui evaluate` computes for the same seeds, and the judge's own rows and files are written.

Run as a subprocess: the script raises the app's per-request item cap for its own process."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import torch

from core.checkpoint import load_generator
from core.evaluation.classifier import load_classifier
from core.evaluation.cli import evaluate_checkpoint
from support import REPO


def test_judge_rows_match_the_evaluate_command_and_files_are_written(tmp_path, fake_data_dir, trained_checkpoint):
    """On the test model: an untrained one gives every class and guidance the same items, which would
    hide a wrong guidance setting."""
    out = tmp_path / "judge"
    model = tmp_path / "tiny.pt"
    shutil.copyfile(trained_checkpoint, model)  # alone: no guide beside the copy
    configs = "ddim:3:2,ddim:4:1:7:0-400"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "independent_judge.py"), str(model),
                           "--data-dir", str(fake_data_dir), "--device", "cpu", "--n-per-class", "2",
                           "--judge-epochs", "1", "--configs", configs, "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "judge.json").read_text())
    assert [row["spec"] for row in report["rows"]] == configs.split(",")
    assert 0.0 <= report["judge_test_accuracy"] <= 1.0 and report["judge_floor"] >= 0.0

    generator, classifier = load_generator(model), load_classifier()
    for row, (steps, guidance, seed, interval) in zip(report["rows"], [(3, 2.0, 0, (21, 400)), (4, 1.0, 7, (0, 400))]):
        expected = evaluate_checkpoint(generator, classifier, fake_data_dir, 2, guidance, "ddim", steps, seed=seed,
                                       floor=math.nan, guidance_interval=interval)
        assert math.isclose(row["ours"]["accuracy"], expected["accuracy"], abs_tol=1e-9)
        assert math.isclose(row["ours"]["fd"], expected["frechet_distance"], rel_tol=1e-4)
        assert len(row["judge"]["per_class"]) == 10 and row["judge"]["fd"] >= 0.0
        assert row["ours"]["fd_inf"] is None  # 20 items: too few for the bias-corrected fit

    images = torch.load(out / "images_0_tiny.pt", weights_only=True)  # the first config's items
    assert images.dtype == torch.uint8 and images.shape == (20, 1, 28, 28)
