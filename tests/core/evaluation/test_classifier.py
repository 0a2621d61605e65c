"""core.evaluation.classifier: its checkpoint round trip, the refusal of bad files, training, the shipped classifier on real data."""

from __future__ import annotations

import math
import pickle
import struct
from pathlib import Path

import pytest
import torch

from core.evaluation.classifier import (
    EvaluationError, default_classifier_path, extract_features, load_classifier, save_classifier, train_classifier,
)
from core.evaluation.metrics import conditional_accuracy, real_floors
from support import DATA_DIR, REPO, TINY, images, needs_data, tiny_classifier


# --- checkpoint ---------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model = tiny_classifier(seed=4)
    with torch.no_grad():  # weights are stored as fp16: round first so outputs must match exactly
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    path = save_classifier(model, TINY, tmp_path / "sub" / "classifier.pt", test_accuracy=0.5)
    assert path.exists() and not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file
    loaded = load_classifier(path)
    assert not loaded.training and loaded.config == TINY and loaded.test_accuracy == 0.5
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = images(16, seed=5)
    with torch.no_grad():  # same weights; only the conv memory layout (NHWC after loading) may differ
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loaded.features(x), model.features(x), rtol=1e-5, atol=1e-6)
    loaded_state = loaded.state_dict()
    assert all(torch.equal(loaded_state[k], v) for k, v in model.state_dict().items())  # bit-identical weights
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["kind"] == "fashion-classifier" and blob["format_version"] == 1
    assert blob["config"] == {"widths": (2, 4), "feature_dim": 8, "dropout": 0.0}
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())


def test_default_classifier_path():
    assert default_classifier_path() == REPO / "checkpoints" / "classifier.pt"


class WritesMarker:
    """Unpickling this would create the marker file: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _good_blob() -> dict:
    model = tiny_classifier()
    return {"kind": "fashion-classifier", "format_version": 1, "config": {"widths": [2, 4], "feature_dim": 8, "dropout": 0.0},
            "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
            "test_accuracy": 0.1}


def _write_bad(kind: str, path: Path, marker: Path) -> None:
    good = _good_blob()
    if kind == "missing":
        return
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01not a checkpoint" * 50)
    elif kind == "truncated":
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "code-zip":
        torch.save({"kind": "fashion-classifier", "payload": WritesMarker(marker)}, path)
    elif kind == "code-raw-pickle":
        path.write_bytes(pickle.dumps(WritesMarker(marker)))  # protocol 4+: refused at its first FRAME opcode
    elif kind == "code-raw-pickle-p2":
        path.write_bytes(pickle.dumps(WritesMarker(marker), protocol=2))  # refused at the GLOBAL opcode
    elif kind == "generator":
        torch.save({"kind": "fashion-diffusion", "format_version": 1, "config": {}, "state_dict": {}}, path)
    elif kind == "bare-state-dict":
        torch.save(good["state_dict"], path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "wrong-shapes":
        good["config"]["widths"] = [3, 4]
        torch.save(good, path)
    elif kind == "missing-tensor":
        del good["state_dict"]["head.bias"]
        torch.save(good, path)
    elif kind == "bad-config":
        good["config"]["feature_dim"] = -1
        torch.save(good, path)
    elif kind == "future-version":
        good["format_version"] = 99
        torch.save(good, path)
    else:
        raise AssertionError(kind)


BAD_KINDS = ["missing", "directory", "empty", "garbage", "truncated", "code-zip", "code-raw-pickle", "code-raw-pickle-p2",
             "generator", "bare-state-dict", "list", "wrong-shapes", "missing-tensor", "bad-config", "future-version"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_checkpoints_raise_one_line_error(tmp_path, kind):
    path, marker = tmp_path / "classifier.pt", tmp_path / "pwned"
    _write_bad(kind, path, marker)
    with pytest.raises(EvaluationError) as caught:
        load_classifier(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert message.startswith(f"{path} is not a usable classifier checkpoint: ")
    assert len(message) < 400
    assert not marker.exists(), "loading must never run code from the file"


@pytest.mark.parametrize("kind", ["code-zip", "code-raw-pickle-p2"])
def test_code_pickles_are_reported_as_needing_code(tmp_path, kind):
    path, marker = tmp_path / "classifier.pt", tmp_path / "pwned"
    _write_bad(kind, path, marker)
    with pytest.raises(EvaluationError, match="needs code"):
        load_classifier(path)
    assert not marker.exists()


def test_generator_checkpoint_message_names_kind(tmp_path):
    path = tmp_path / "model.pt"
    _write_bad("generator", path, tmp_path / "unused")
    with pytest.raises(EvaluationError, match="fashion-diffusion"):
        load_classifier(path)


# --- training and the floor on a synthetic dataset -------------------------------


def write_fake_fashion(root: Path, n_train: int = 96, n_test: int = 40) -> Path:
    """FashionMNIST/raw IDX files where class c is a bright square of side 2 + 2c on dim noise."""
    generator = torch.Generator().manual_seed(0)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        pixels = torch.randint(0, 30, (n, 28, 28), generator=generator, dtype=torch.uint8)
        for i, c in enumerate(labels.tolist()):
            pixels[i, 4:6 + 2 * c, 4:6 + 2 * c] = 220
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">4i", 2051, n, 28, 28) + pixels.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 2049, n) + labels.to(torch.uint8).numpy().tobytes())
    return root


def test_train_save_load_and_floor_on_fake_data(tmp_path):
    data_dir = write_fake_fashion(tmp_path / "data")
    reports = []
    model, cfg, accuracy = train_classifier(data_dir, epochs=2, seed=0, progress=reports.append, config=TINY,
                                            batch_size=32, threads=None)
    assert [r.epoch for r in reports] == [1, 2] and all(math.isfinite(r.loss) for r in reports)
    assert 0.0 <= accuracy <= 1.0 and not model.training and cfg == TINY
    path = save_classifier(model, cfg, tmp_path / "c.pt", accuracy)
    assert load_classifier(path).test_accuracy == accuracy

    floor, floor_infinity = real_floors(model, data_dir, n_per_class=1000)  # ~10 train images per class (fewer than asked) vs 40 test
    assert math.isfinite(floor) and floor >= 0
    assert real_floors(model, data_dir, n_per_class=1000) == (floor, floor_infinity)  # seeded draws: deterministic
    assert real_floors(model, data_dir, n_per_class=1000, seed=1)[0] != floor
    assert math.isfinite(floor_infinity) and floor_infinity < floor  # the small-sample bias is gone
    smaller, same_infinity = real_floors(model, data_dir, n_per_class=5)
    assert same_infinity == floor_infinity and smaller != floor  # floor_infinity does not depend on n_per_class


def test_training_learns_an_easy_dataset(tmp_path):
    """On squares whose size is the class, a small classifier must get far above chance: a run whose
    weights do not move stays at about 10%."""
    from core.evaluation.classifier import ClassifierConfig

    data_dir = write_fake_fashion(tmp_path / "data")
    reports = []
    _, _, accuracy = train_classifier(data_dir, epochs=10, seed=0, progress=reports.append, batch_size=16, lr=1e-2,
                                      config=ClassifierConfig(widths=(8, 16), feature_dim=16, dropout=0.0), threads=None)
    assert accuracy >= 0.8  # 1.0 when written; chance is 0.1
    assert reports[-1].loss < reports[0].loss - 0.5


# --- with the real data (skipped without it) -------------------------------------


@needs_data
def test_shipped_classifier_on_real_test_images():
    from core.data import load_split

    test = load_split("test", DATA_DIR, limit=1000)
    shipped = load_classifier(default_classifier_path())
    assert shipped.test_accuracy >= 0.92
    overall, per_class = conditional_accuracy(shipped, test.as_float(), test.labels)
    assert overall >= 0.9 and all(not math.isnan(a) for a in per_class)
    assert extract_features(shipped, test.as_float()[:8]).shape == (8, shipped.config.feature_dim)
