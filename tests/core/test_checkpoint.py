"""Checkpoints: a file alone rebuilds its model; nothing in a file is executed; bad files give one line."""

import os
import pickle
import zipfile

import pytest
import torch

from support import REPO, make_tiny_checkpoint
from core.model.config import PRESETS
from core.model.denoiser import Denoiser
from core.checkpoint import CheckpointError, atomic_save, export_generator, load_generator, read_checkpoint
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample

BOOT = [0.0] * 9 + [1.0]


class Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_file_alone_rebuilds_the_model(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "a.pt", seed=3)
    generator = load_generator(path)
    assert generator.model_config.channels == (16, 32)
    assert generator.diffusion_config.prediction == "v"
    assert len(generator.hash) == 16
    raw = torch.load(path, weights_only=True)
    for key, value in generator.denoiser.state_dict().items():
        assert torch.equal(value, raw["ema"][key])


def test_half_precision_export_keeps_every_weight_and_samples_like_the_original(tmp_path, trained_checkpoint):
    source = torch.load(trained_checkpoint, weights_only=True)
    noise = torch.Generator().manual_seed(0)  # 32-bit weights that 16 bits must round
    source["ema"] = {k: v.float() + 1e-4 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v
                     for k, v in source["ema"].items()}
    atomic_save(source, tmp_path / "full.pt")
    export_generator(source, tmp_path / "half.pt", half=True)
    assert os.path.getsize(tmp_path / "half.pt") < 0.6 * os.path.getsize(tmp_path / "full.pt")
    written = read_checkpoint(tmp_path / "half.pt")["ema"]
    assert written.keys() == source["ema"].keys()
    for key, value in source["ema"].items():
        want = value.half() if value.is_floating_point() else value
        assert written[key].dtype == want.dtype and torch.equal(written[key], want), key
    request = SampleRequest([0.0] * 7 + [0.5, 0.0, 0.5], n=2, steps=4, sampler="ddim", seed=1)
    a = sample(load_generator(tmp_path / "full.pt"), request)
    b = sample(load_generator(tmp_path / "half.pt"), request)
    assert (a - b).abs().mean() < 0.01 and (a - b).abs().max() < 0.1


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"kind": "fashion-diffusion", "payload": Exploit(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="needs code"):
        load_generator(evil)
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Exploit(str(marker))))
    with pytest.raises(CheckpointError):
        load_generator(plain)
    assert not marker.exists()


def _bad_files(tmp_path):
    good = make_tiny_checkpoint(tmp_path / "good.pt")
    blob = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "adir.pt").mkdir()
    torch.save({"kind": "fashion-classifier", "format_version": 1, "state_dict": {}}, tmp_path / "classifier.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    data = torch.load(good, weights_only=True)
    data["ema"] = {k: torch.zeros(3) for k in data["ema"]}
    torch.save(data, tmp_path / "shapes.pt")
    data = torch.load(good, weights_only=True)
    data["model_config"]["channels"] = [32, 64]
    torch.save(data, tmp_path / "arch.pt")
    data = torch.load(good, weights_only=True)
    data["format_version"] = 99
    torch.save(data, tmp_path / "future.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as archive:
        archive.writestr("x", "y")


@pytest.mark.parametrize("name, fragment", [
    ("truncated.pt", "corrupt or truncated"), ("empty.pt", "empty"), ("text.pt", "not a PyTorch checkpoint"),
    ("adir.pt", "directory"), ("classifier.pt", "'fashion-classifier'"), ("list.pt", "not a fashion-tui checkpoint"),
    ("shapes.pt", "do not fit"), ("arch.pt", "do not fit"), ("future.pt", "format version"),
    ("zip.pt", "not a PyTorch checkpoint"), ("missing.pt", "does not exist"),
])
def test_bad_checkpoints_one_line(tmp_path, name, fragment):
    _bad_files(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / name)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_atomic_save_leaves_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"kind": "fashion-diffusion", "format_version": 1, "v": 1}, path)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_save({"kind": "fashion-diffusion", "format_version": 1, "v": 2}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_the_shape_check_does_not_pull_in_the_compiler(tiny_checkpoint):
    # nn.Embedding's normal_ init on a meta tensor imports torch._dynamo: over a second of every
    # `fashion-tui generate` in a fresh process, for a model whose values nobody reads
    import subprocess
    import sys

    code = ("import sys; from core.checkpoint import check_weights, read_checkpoint; "
            "check_weights(read_checkpoint(sys.argv[1]), 'ema'); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_checkpoint)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_class_table_starts_as_nn_embedding_would(tmp_path):
    torch.manual_seed(3)
    expected = torch.empty(10, 16).normal_()
    torch.manual_seed(3)
    preset = PRESETS["tiny"]
    assert torch.equal(Denoiser(preset.model, preset.diffusion).class_encoder.weight.detach(), expected)


def test_config_defaults_are_the_default_preset_but_for_the_loss_weighting():
    """A checkpoint's missing keys take the config defaults, so loss_weighting stays "uniform" by default:
    files from before it existed were trained that way, and resuming them must go on that way."""
    from dataclasses import replace

    from core.model.config import DEFAULT_PRESET, DiffusionConfig, ModelConfig, from_dict

    assert ModelConfig() == PRESETS[DEFAULT_PRESET].model
    assert replace(DiffusionConfig(), loss_weighting="min-snr") == PRESETS[DEFAULT_PRESET].diffusion
    old = from_dict(DiffusionConfig, {k: v for k, v in vars(PRESETS["wide"].diffusion).items() if k != "loss_weighting"})
    assert old.loss_weighting == "uniform"
    assert PRESETS["fast"].model.channels == (64, 96)  # the faster preset stays what its checkpoints say
