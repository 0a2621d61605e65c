"""The shipped default model, as a fresh user meets it: `fashion-tui generate --class boot` run from an
unrelated directory, with no --checkpoint and no dataset, writes PNGs that the shipped classifier reads
as ankle boots, and each PNG names the shipped checkpoint.

Short DDIM runs keep this quick; the full evaluation lives in bench/quality_table.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from core.checkpoint import DEFAULT_MODEL_NAME, default_checkpoint, load_generator
from core.classes import CLASS_NAMES
from core.evaluation.classifier import default_classifier_path, load_classifier, predict
from core.images import pixel_levels, read_metadata

REPO = Path(__file__).resolve().parents[2]
BOOT = CLASS_NAMES.index("Ankle boot")


def _generate_command() -> list[str]:
    script = Path(sys.executable).with_name("fashion-tui")  # the installed console script, when there is one
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]


def test_shipped_files_are_the_default_and_small():
    path = default_checkpoint()
    assert path.name == DEFAULT_MODEL_NAME and path.parent == REPO / "checkpoints"
    assert path.stat().st_size < 10 * 2**20
    generator = load_generator(path)
    assert all(p.dtype == torch.float32 for p in generator.denoiser.parameters())  # 16-bit on disk, float32 to run
    assert default_classifier_path().parent == REPO / "checkpoints"


def test_generate_boots_from_anywhere_without_data(tmp_path):
    # a fresh user's environment, but measured speed choices stay in this session's folder (conftest)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHION") or k == "FASHION_TUI_CACHE_DIR"}
    env["PYTHONPATH"] = str(REPO)  # only used by the `-m tui.cli` fallback
    env["OMP_NUM_THREADS"] = "2"
    command = _generate_command() + ["generate", "--class", "boot", "--n", "8", "--steps", "20", "--seed", "3", "--out", "boots"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    items = sorted(p for p in (tmp_path / "boots").glob("*.png") if not p.name.startswith("grid_"))
    assert len(items) == 8
    recipe = read_metadata(items[0])
    assert recipe["checkpoint_hash"] == load_generator(default_checkpoint()).hash

    pixels = torch.stack([pixel_levels(Image.open(p).convert("L")).float().view(1, 28, 28) for p in items])
    predicted = predict(load_classifier(), pixels / 127.5 - 1.0)
    assert int((predicted == BOOT).sum()) >= 7, [CLASS_NAMES[i] for i in predicted.tolist()]


def test_the_shipped_guide_loads_beside_the_model_and_only_acts_when_asked():
    from core.checkpoint import guide_path_for, open_generator
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    generator = open_generator(None)
    guide = generator.guide
    assert guide is not None and guide.path == guide_path_for(default_checkpoint())
    assert default_checkpoint().stat().st_size + guide.path.stat().st_size < 10 * 2**20  # both under 10 MB
    size = lambda g: sum(p.numel() for p in g.denoiser.parameters())
    assert size(guide) < size(generator) / 3  # the guide is the small model, not a copy of the big one
    request = dict(n=2, steps=6, seed=5)
    plain = sample(load_generator(default_checkpoint()), SampleRequest([0.0] * 9 + [1.0], **request))
    assert torch.equal(sample(generator, SampleRequest([0.0] * 9 + [1.0], **request)), plain)  # old recipes: same pixels
    auto = sample(generator, SampleRequest([0.0] * 9 + [1.0], autoguidance=0.5, guidance=1.0, **request))
    assert not torch.equal(auto, plain)
    assert int(predict(load_classifier(), auto).eq(BOOT).sum()) == 2  # still boots


def test_the_shipped_student_loads_beside_the_model_and_draws_its_items_in_two_calls():
    """checkpoints/fashion-default-student.pt: at most 5 MB, found beside the shipped model, a
    student of it (its hash recorded), and its default (2 steps, 2 model calls an item) draws items
    the classifier reads as the class asked for."""
    from core.checkpoint import open_generator, student_path_for
    from core.sampling.limits import DEFAULT_STEPS, STUDENT
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    generator = open_generator(None)
    student = generator.student
    assert student is not None and student.path == student_path_for(default_checkpoint())
    assert student.path.stat().st_size <= 5 * 2**20
    assert student.model_config.guidance_input and not generator.model_config.guidance_input
    calls = []
    hook = student.denoiser.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        boots = sample(generator, SampleRequest([0.0] * 9 + [1.0], n=8, seed=3, sampler=STUDENT))
    finally:
        hook.remove()
    assert calls == [8] * DEFAULT_STEPS[STUDENT]  # one row an item, no CFG doubling
    assert int(predict(load_classifier(), boots).eq(BOOT).sum()) >= 7
