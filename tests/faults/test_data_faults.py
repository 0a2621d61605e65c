"""Data problems given to a real `train_cli.py` process: a clear line naming the file, and training never starts."""

from __future__ import annotations

import pytest
import torch

from faultkit import TRAIN, assert_refused, child_env, cli, make_fake_dataset, write_idx


def break_missing(raw):
    (raw / "train-labels-idx1-ubyte").unlink()
    return ["train-labels-idx1-ubyte", str(raw), "--download"]


def break_truncated(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    return [f"data file {path} is truncated"]


def break_magic(raw):
    path = raw / "train-labels-idx1-ubyte"
    write_idx(path, torch.zeros(64, dtype=torch.uint8), 2051)  # the image files' magic on a label file
    return [f"data file {path} has wrong magic number 2051 (expected 2049)"]


def break_header(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08")
    return [f"data file {path} is truncated (3 bytes, not an IDX file)"]


def break_labels(raw):
    path = raw / "train-labels-idx1-ubyte"
    write_idx(path, torch.full((64,), 200), 2049)
    return [f"data file {path} holds label 200"]


def break_directory(raw):
    path = raw / "train-images-idx3-ubyte"
    path.unlink()
    path.mkdir()
    return [f"cannot read data file {path}"]


BREAKS = [break_missing, break_truncated, break_magic, break_header, break_labels, break_directory]


def broken_run(tmp_path, damage):
    data = make_fake_dataset(tmp_path / "data", n_train=64, n_test=10)
    fragments = damage(data / "FashionMNIST" / "raw")
    args = ["--data-dir", data, "--run-dir", tmp_path / "run", "--preset", "tiny", "--batch-size", "16", "--epochs", "1",
            "--device", "cpu", "--no-progress"]
    return args, fragments


@pytest.mark.parametrize("damage", BREAKS, ids=[b.__name__[6:] for b in BREAKS])
def test_broken_data_is_named_and_training_never_starts(tmp_path, damage):
    args, fragments = broken_run(tmp_path, damage)
    result = cli(TRAIN, *args, cwd=tmp_path)
    assert_refused(result, *fragments, prog="fashion-train")
    assert not (tmp_path / "run").exists()  # no checkpoints, metrics.jsonl or run.json


def test_errors_stay_one_line_when_stderr_is_not_a_terminal(tmp_path):
    args, fragments = broken_run(tmp_path, break_missing)
    env = child_env()
    del env["COLUMNS"]
    result = cli(TRAIN, *args, cwd=tmp_path, env=env)
    assert_refused(result, *fragments, prog="fashion-train")
