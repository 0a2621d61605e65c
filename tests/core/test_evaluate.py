"""core.evaluate: metrics against closed forms, checkpoint round trip and refusal of bad files."""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path

import pytest
import torch

from core.classes import CLASS_NAMES, NUM_CLASSES
from core.evaluate import (
    MIN_ITEMS_FOR_INFINITY,
    RESULT_KEYS,
    ClassifierConfig,
    EvaluationError,
    FashionClassifier,
    conditional_accuracy,
    default_classifier_path,
    diversity,
    evaluate_generator,
    extract_features,
    format_table,
    frechet_distance,
    frechet_distance_infinity,
    load_classifier,
    real_floors,
    balanced_draws,
    floors_from_features,
    FLOOR_DRAWS,
    REAL_FLOOR_PER_CLASS,
    save_classifier,
    train_classifier,
)

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA_DIR / "FashionMNIST" / "raw").is_dir(), reason=f"no Fashion-MNIST at {DATA_DIR}")

TINY = ClassifierConfig(widths=(2, 4), feature_dim=8, dropout=0.0)


def tiny_classifier(seed: int = 0) -> FashionClassifier:
    """Random tiny classifier with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = FashionClassifier(TINY)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1  # (n, 1, 28, 28) in [-1, 1]


# --- Frechet distance -------------------------------------------------------


def diagonal_set(mean: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """2F rows mean +- spread_i e_i: sample mean is `mean`, sample covariance exactly diag(2 spread^2 / (2F - 1))."""
    offsets = torch.diag(spread.double())  # (F, F)
    return torch.cat([mean + offsets, mean - offsets])  # (2F, F)


def test_frechet_zero_for_identical_sets():
    feats = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(feats, feats.clone()[torch.randperm(300)]) == pytest.approx(0.0, abs=1e-8)


def test_frechet_matches_closed_form_for_diagonal_covariances():
    f = 6
    mean_a, mean_b = torch.zeros(f, dtype=torch.float64), torch.linspace(-1, 2, f, dtype=torch.float64)
    spread_a, spread_b = torch.linspace(0.5, 3, f), torch.linspace(2, 0.1, f)
    var_a = 2 * spread_a.double() ** 2 / (2 * f - 1)
    var_b = 2 * spread_b.double() ** 2 / (2 * f - 1)
    expected = float((mean_a - mean_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum())
    a, b = diagonal_set(mean_a, spread_a), diagonal_set(mean_b, spread_b)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shift", [0.1, 1.0, 5.0])
def test_frechet_grows_with_mean_shift(shift):
    # a pure shift leaves the covariance alone, so the distance is exactly |shift|^2 * F
    feats = torch.randn(200, 8, generator=torch.Generator().manual_seed(2))
    assert frechet_distance(feats, feats + shift) == pytest.approx(shift**2 * 8, rel=1e-6)


def test_frechet_symmetric_and_positive_for_rank_deficient_sets():
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(20, 32, generator=generator)  # fewer rows than features: singular covariances
    b = torch.randn(25, 32, generator=generator) * 1.5 + 0.3
    d_ab, d_ba = frechet_distance(a, b), frechet_distance(b, a)
    assert d_ab > 0 and math.isfinite(d_ab)
    assert d_ab == pytest.approx(d_ba, rel=1e-6)


def test_frechet_infinity_removes_the_small_sample_bias():
    # a ~ N(0, I), b ~ N(mu, I): the true distance is |mu|^2 = 0.49; from 400 rows of a in 32
    # dimensions the plain estimate is ~0.77 too high, the extrapolated one within noise of the truth
    raw_errors, infinity_errors = [], []
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        mu = torch.zeros(32)
        mu[0] = 0.7
        a, b = torch.randn(400, 32, generator=generator), torch.randn(20000, 32, generator=generator) + mu
        raw_errors.append(frechet_distance(a, b) - 0.49)
        infinity_errors.append(frechet_distance_infinity(a, b) - 0.49)
    assert min(raw_errors) > 0.6
    assert max(abs(e) for e in infinity_errors) < 0.3
    assert abs(sum(infinity_errors) / 4) < 0.15
    a = torch.randn(400, 32, generator=torch.Generator().manual_seed(9))
    assert frechet_distance_infinity(a, b, seed=1) == frechet_distance_infinity(a, b, seed=1)  # seeded subsets


def test_frechet_infinity_needs_two_subset_sizes():
    with pytest.raises(EvaluationError, match="at least two subset sizes"):
        frechet_distance_infinity(torch.zeros(2, 4), torch.randn(10, 4))
    with pytest.raises(EvaluationError, match="at least two subset sizes"):
        frechet_distance_infinity(torch.zeros(10, 4), torch.randn(10, 4), fractions=(1.0,))


def test_frechet_rejects_bad_inputs():
    with pytest.raises(EvaluationError):
        frechet_distance(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(EvaluationError):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))


# --- accuracy and diversity -------------------------------------------------


class PixelCodeClassifier(FashionClassifier):
    """Predicts the class written into pixel (0, 0) as -1 + 0.2 c; features are one-hot (B, 10)."""

    def __init__(self):
        super().__init__(ClassifierConfig(widths=(1, 1), feature_dim=NUM_CLASSES, dropout=0.0))
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(NUM_CLASSES))
            self.head.bias.zero_()

    def features(self, x):
        code = ((x[:, 0, 0, 0] + 1) / 0.2).round().long().clamp(0, NUM_CLASSES - 1)
        return torch.nn.functional.one_hot(code, NUM_CLASSES).float()


def coded_images(classes: list[int]) -> torch.Tensor:
    x = -torch.ones(len(classes), 1, 28, 28)
    x[:, 0, 0, 0] = torch.tensor(classes, dtype=torch.float32) * 0.2 - 1
    return x


def test_conditional_accuracy_known_value():
    predicted = [0, 0, 1, 1, 2, 2, 2, 9]
    targets = [0, 1, 1, 1, 2, 2, 3, 9]  # correct: 0, 1, 1, 2, 2, 9 -> 6 of 8
    overall, per_class = conditional_accuracy(PixelCodeClassifier(), coded_images(predicted), torch.tensor(targets))
    assert overall == pytest.approx(6 / 8)
    assert len(per_class) == NUM_CLASSES
    assert per_class[0] == 1.0 and per_class[1] == pytest.approx(2 / 3) and per_class[2] == 1.0
    assert per_class[3] == 0.0 and per_class[9] == 1.0
    assert all(math.isnan(per_class[c]) for c in (4, 5, 6, 7, 8))


def test_conditional_accuracy_is_batched_and_restores_training_mode():
    model = tiny_classifier()
    model.train()
    x = images(1200)
    overall, _ = conditional_accuracy(model, x, torch.arange(1200) % 10)
    assert model.training  # evaluation must not leave the model in eval mode behind the caller's back
    model.eval()
    expected = float((model(x).argmax(1) == torch.arange(1200) % 10).float().mean())
    assert overall == pytest.approx(expected)


def test_conditional_accuracy_rejects_wrong_shapes():
    with pytest.raises(EvaluationError):
        conditional_accuracy(tiny_classifier(), torch.zeros(4, 28, 28), torch.zeros(4))
    with pytest.raises(EvaluationError):
        conditional_accuracy(tiny_classifier(), torch.zeros(4, 1, 28, 28), torch.zeros(3))


def test_diversity_known_values():
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0],  # class 0: one pair at distance 5
                          [0.0, 0.0], [1.0, 0.0], [2.0, 0.0],  # class 1: distances 1, 1, 2
                          [7.0, 7.0]])  # class 2: a single item
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    result = diversity(feats, labels)
    assert len(result) == NUM_CLASSES
    assert result[0] == pytest.approx(5.0)
    assert result[1] == pytest.approx(4 / 3)
    assert all(math.isnan(result[c]) for c in range(2, NUM_CLASSES))


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
    assert default_classifier_path() == Path(__file__).resolve().parents[2] / "checkpoints" / "classifier.pt"


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


# --- evaluate_generator ---------------------------------------------------------


def test_evaluate_generator_returns_documented_keys():
    classifier = tiny_classifier()
    calls: list[tuple[int, int]] = []

    def sample_fn(class_index: int, n: int) -> torch.Tensor:
        calls.append((class_index, n))
        return images(n, seed=100 + class_index) * 1.2  # a little outside [-1, 1]: must be clamped, not rejected

    test_x, test_y = images(40, seed=7), torch.arange(40) % 10
    test_y[test_y == 9] = 8  # class 9 has no real items: its real diversity is None, not NaN
    progress: list[tuple[int, int]] = []
    result = evaluate_generator(sample_fn, classifier, test_x, test_y, n_per_class=3, floor=2.0,
                                progress=lambda done, total: progress.append((done, total)))
    assert calls == [(c, 3) for c in range(NUM_CLASSES)]
    assert progress[-1] == (NUM_CLASSES, NUM_CLASSES)
    assert tuple(result) == RESULT_KEYS
    json.dumps(result, allow_nan=False)  # strict JSON: NaN was replaced by None
    assert result["n_per_class"] == 3 and result["n_generated"] == 30 and result["n_real"] == 40
    assert 0.0 <= result["accuracy"] <= 1.0
    assert len(result["per_class_accuracy"]) == NUM_CLASSES
    assert result["frechet_distance"] >= 0
    assert result["floor"] == 2.0 and result["ratio"] == pytest.approx(result["frechet_distance"] / 2.0)
    assert len(result["diversity_generated"]) == len(result["diversity_real"]) == NUM_CLASSES
    assert result["diversity_real"][9] is None and result["diversity_real"][0] is not None
    table = format_table(result)
    assert all(name in table for name in CLASS_NAMES)
    assert "Frechet distance" in table and "floor" in table
    assert f"ratio: {result['ratio']:.2f}x" in table  # two decimals: 1.46x and 1.54x both round to 1.5x

    assert result["frechet_infinity"] is None and result["floor_infinity"] is None  # 30 items: too few to extrapolate
    assert "bias-corrected" not in table

    no_floor = evaluate_generator(sample_fn, classifier, test_x, test_y, n_per_class=2)
    assert no_floor["floor"] is None and no_floor["ratio"] is None
    assert "floor" not in format_table(no_floor)


def test_evaluate_generator_bias_corrected_distance_from_enough_items():
    classifier = tiny_classifier()
    test_x, test_y = images(200, seed=7), torch.arange(200) % 10
    per_class = MIN_ITEMS_FOR_INFINITY // NUM_CLASSES

    def squares(c: int, n: int) -> torch.Tensor:  # a bright square of random size and place per item
        generator = torch.Generator().manual_seed(300 + c)
        out = torch.full((n, 1, 28, 28), -1.0)
        for i in range(n):
            side, x, y = (int(v) for v in torch.randint(3, 14, (3,), generator=generator))
            out[i, 0, y:y + side, x:x + side] = 1.0
        return out

    result = evaluate_generator(squares, classifier, test_x, test_y, n_per_class=per_class, floor=0.5, floor_infinity=0.02)
    assert isinstance(result["frechet_infinity"], float) and math.isfinite(result["frechet_infinity"])
    generated = extract_features(classifier, torch.cat([squares(c, per_class) for c in range(NUM_CLASSES)]))
    assert result["frechet_infinity"] == pytest.approx(frechet_distance_infinity(generated, extract_features(classifier, test_x)))
    assert result["floor_infinity"] == 0.02
    json.dumps(result, allow_nan=False)
    assert "bias-corrected (items -> infinity):" in format_table(result) and "real train-vs-test: 0.020" in format_table(result)


def test_evaluate_generator_rejects_bad_samples():
    classifier, test_x, test_y = tiny_classifier(), images(20), torch.arange(20) % 10
    with pytest.raises(EvaluationError, match="shaped"):
        evaluate_generator(lambda c, n: torch.zeros(n, 28, 28), classifier, test_x, test_y, n_per_class=2)
    with pytest.raises(EvaluationError, match="expected 2"):
        evaluate_generator(lambda c, n: torch.zeros(n + 1, 1, 28, 28), classifier, test_x, test_y, n_per_class=2)
    with pytest.raises(EvaluationError, match="non-finite"):
        evaluate_generator(lambda c, n: torch.full((n, 1, 28, 28), math.nan), classifier, test_x, test_y, n_per_class=2)


# --- the real-vs-real floor ---------------------------------------------------------


def skewed_labels() -> torch.Tensor:
    # class c has 3 + 4c items, shuffled: class 0 has 3, class 9 has 39
    counts = [3 + 4 * c for c in range(NUM_CLASSES)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]


def test_balanced_draws_hold_the_same_count_of_every_class():
    labels = skewed_labels()
    draws = balanced_draws(labels, n_per_class=3, draws=4, seed=0)
    assert len(draws) == 4
    for draw in draws:
        assert torch.bincount(labels[draw], minlength=NUM_CLASSES).tolist() == [3] * NUM_CLASSES
        assert len(torch.unique(draw)) == len(draw)  # no image twice in one draw
    assert len({tuple(sorted(d.tolist())) for d in draws}) == 4  # the draws differ
    assert all(torch.equal(a, b) for a, b in zip(draws, balanced_draws(labels, 3, 4, seed=0)))
    assert not torch.equal(draws[0], balanced_draws(labels, 3, 4, seed=1)[0])
    # a class with fewer items than asked gives all it has; the rest still give n_per_class
    counts = torch.bincount(labels[balanced_draws(labels, 6, 1)[0]], minlength=NUM_CLASSES).tolist()
    assert counts == [3] + [6] * (NUM_CLASSES - 1)
    # a smaller draw is the start of each class's part of a larger one (same permutations)
    small, large = balanced_draws(labels, 2, 1)[0], balanced_draws(labels, 5, 1)[0]
    for c in range(NUM_CLASSES):
        assert small[labels[small] == c].tolist() == large[labels[large] == c][:2].tolist()


def test_floors_average_balanced_draws_and_see_each_train_image_once():
    labels = skewed_labels()
    generator = torch.Generator().manual_seed(0)
    # class-dependent features, so the class mix of a draw shows in its distance
    table = torch.randn(len(labels), 4, generator=generator) + 3 * torch.nn.functional.one_hot(labels % 4, 4)
    test_feats = torch.randn(50, 4, generator=generator)
    seen = []

    def train_features(indices):
        seen.append(indices.clone())
        return table[indices]

    floor, floor_inf = floors_from_features(train_features, labels, test_feats, n_per_class=3, seed=2)
    assert len(seen) == 1 and len(torch.unique(seen[0])) == len(seen[0])
    draws = balanced_draws(labels, 3, FLOOR_DRAWS, seed=2)
    expected = sum(frechet_distance(table[d], test_feats) for d in draws) / FLOOR_DRAWS
    assert floor == pytest.approx(expected, rel=1e-12)
    assert floor != pytest.approx(frechet_distance(table[draws[0]], test_feats), rel=1e-6)  # a mean, not one draw
    large = balanced_draws(labels, REAL_FLOOR_PER_CLASS, 1, seed=2)[0]
    assert floor_inf == pytest.approx(frechet_distance_infinity(table[large], test_feats), rel=1e-12)


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
