"""quality.jsonl followed like metrics.jsonl: half-written, damaged, replaced and deleted files never
raise; the training time of each record; the runs of a runs folder."""

from __future__ import annotations

import json
import math
import os
import shutil

from tui.runwatch import RunTailer, list_runs


def quality_line(step: int, accuracy: float = 0.5) -> str:
    return json.dumps({"step": step, "epoch": step // 50, "accuracy": accuracy, "kid": 0.1, "elapsed_sec": step * 0.1,
                       "per_class_accuracy": [accuracy] * 10, "items": 200, "seconds": 1.0}) + "\n"


def test_quality_records_half_written_damaged_and_replaced(run_dir):
    tailer = RunTailer(run_dir)
    snapshot = tailer.poll()
    assert snapshot.quality == () and not snapshot.notes  # a run without a probe is not a problem
    assert snapshot.elapsed == (1.0, 2.0, 3.0, 4.0, 5.0) and snapshot.rates[0] == 110.0
    line = quality_line(50)
    with open(run_dir / "quality.jsonl", "a") as handle:
        handle.write(quality_line(25) + "[1, 2]\n" + line[:30])  # a damaged line and a half-written one
    snapshot = tailer.poll()
    assert [r["step"] for r in snapshot.quality] == [25]
    assert any("damaged line(s) in quality.jsonl" in note for note in snapshot.notes)
    version = snapshot.version
    with open(run_dir / "quality.jsonl", "a") as handle:
        handle.write(line[30:])
    snapshot = tailer.poll()
    assert [r["step"] for r in snapshot.quality] == [25, 50] and snapshot.version > version
    replacement = run_dir / "quality.new"
    replacement.write_text(quality_line(10, 0.25))  # a resumed run cut it back
    os.replace(replacement, run_dir / "quality.jsonl")
    snapshot = tailer.poll()
    assert [r["accuracy"] for r in snapshot.quality] == [0.25]
    assert any("quality.jsonl was replaced" in note for note in snapshot.notes)
    (run_dir / "quality.jsonl").unlink()
    snapshot = tailer.poll()
    assert [r["step"] for r in snapshot.quality] == [10]  # what was read is kept
    assert any("quality.jsonl disappeared" in note for note in snapshot.notes)


def test_metrics_without_training_time_still_draw(run_dir):
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    snapshot = RunTailer(run_dir).poll()
    assert snapshot.steps == (1,) and math.isnan(snapshot.elapsed[0]) and math.isnan(snapshot.rates[0])


def test_list_runs_finds_run_directories_only(tmp_path):
    root = tmp_path / "runs"
    for name, files in (("b", ["run.json"]), ("a", ["metrics.jsonl"]), ("not-a-run", ["notes.txt"])):
        (root / name).mkdir(parents=True)
        for file in files:
            (root / name / file).write_text("{}")
    (root / "stray.json").write_text("{}")
    assert [p.name for p in list_runs(root)] == ["a", "b"]
    shutil.rmtree(root)
    assert list_runs(root) == []
