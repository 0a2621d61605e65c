"""Following a run directory: half-written lines, damaged lines, replaced files, a removed directory."""

from __future__ import annotations

import os
import shutil

from tui.runwatch import RunTailer, newest_checkpoint


def test_reads_complete_lines_and_waits_for_a_half_written_one(run_dir, helpers):
    metrics_line = helpers.metrics_line
    tailer = RunTailer(run_dir)
    snapshot = tailer.poll()
    assert snapshot.exists and snapshot.info["device"] == "cpu"
    assert snapshot.steps == (10, 20, 30, 40, 50)
    assert snapshot.checkpoints == ("step-0000010.pt",)
    assert snapshot.sample is not None and (snapshot.sample.width, snapshot.sample.height) == (62, 302)
    line = metrics_line(60)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(line[:17])  # the trainer is in the middle of writing
    assert tailer.poll().steps[-1] == 50
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(line[17:])
    snapshot = tailer.poll()
    assert snapshot.steps[-1] == 60 and snapshot.latest["step"] == 60 and not snapshot.notes


def test_damaged_lines_are_skipped_and_counted(run_dir, helpers):
    metrics_line = helpers.metrics_line
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write("{not json\n" + metrics_line(60))
    snapshot = RunTailer(run_dir).poll()
    assert snapshot.steps[-1] == 60
    assert any("damaged" in note for note in snapshot.notes)


def test_a_replaced_file_is_read_again_from_the_start(run_dir, helpers):
    metrics_line = helpers.metrics_line
    tailer = RunTailer(run_dir)
    assert len(tailer.poll().steps) == 5
    replacement = run_dir / "metrics.new"
    replacement.write_text(metrics_line(5) + metrics_line(6))
    os.replace(replacement, run_dir / "metrics.jsonl")
    snapshot = tailer.poll()
    assert snapshot.steps == (5, 6)
    assert any("replaced" in note for note in snapshot.notes)


def test_a_removed_run_directory_is_reported_and_followed_again_when_back(run_dir, tmp_path):
    tailer = RunTailer(run_dir)
    tailer.poll()
    backup = tmp_path / "backup"
    shutil.move(run_dir, backup)
    snapshot = tailer.poll()
    assert not snapshot.exists and any("does not exist" in note for note in snapshot.notes)
    assert snapshot.steps == (10, 20, 30, 40, 50)  # what was read is kept
    shutil.move(backup, run_dir)
    assert tailer.poll().exists


def test_versions_change_only_when_something_changed(run_dir, helpers):
    metrics_line = helpers.metrics_line
    tailer = RunTailer(run_dir)
    first = tailer.poll().version
    assert tailer.poll().version == first
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(metrics_line(60))
    assert tailer.poll().version > first


def test_newest_checkpoint_ignores_temp_files(run_dir):
    (run_dir / "checkpoints" / ".step-0000099.pt.123.tmp").write_bytes(b"half")
    (run_dir / "checkpoints" / "step-0000020.pt").write_bytes(b"x")
    assert newest_checkpoint(run_dir).name == "step-0000020.pt"


def test_a_half_written_run_json_is_a_note_and_is_read_once_complete(run_dir):
    tailer = RunTailer(run_dir)
    assert tailer.poll().info["state"] == "running"
    text = (run_dir / "run.json").read_text().replace("running", "finished")
    for partial in ("", text[:1], text[: len(text) // 2]):  # the trainer rewrites it while we read
        (run_dir / "run.json").write_text(partial)
        snapshot = tailer.poll()
        assert snapshot.info == {} and any("run.json is unreadable" in note for note in snapshot.notes), partial
        assert snapshot.steps == (10, 20, 30, 40, 50)  # the rest of the run is still read
    (run_dir / "run.json").write_text(text)
    snapshot = tailer.poll()
    assert snapshot.info["state"] == "finished" and not snapshot.notes


def test_a_damaged_sample_grid_keeps_the_last_good_one(run_dir):
    tailer = RunTailer(run_dir)
    first = tailer.poll().sample
    assert first is not None and first.epoch == 1
    good = (run_dir / "samples" / "epoch-001.png").read_bytes()
    pixels = good.index(b"IDAT") + 4
    broken = good[:pixels] + b"\xff" * 8 + good[pixels + 8:]  # the compressed pixels' start overwritten
    for damaged in (good[: len(good) // 2], broken, b"", b"\x89PNG\r\n\x1a\n" + bytes(40)):
        (run_dir / "samples" / "epoch-002.png").write_bytes(damaged)  # being written, or broken on disk
        snapshot = tailer.poll()
        assert snapshot.sample is first and snapshot.steps == (10, 20, 30, 40, 50)
    (run_dir / "samples" / "epoch-002.png").write_bytes(good)
    assert tailer.poll().sample.epoch == 2
