"""The guidance as an input: a student built from a teacher starts as exactly its conditional model; files
without the config key load as they did; a teacher takes a g per item as CFG with that g."""

import dataclasses

import pytest
import torch

from core.checkpoint import load_generator
from core.model.config import ModelConfig, as_dict, from_dict
from core.model.denoiser import STUDENT_MIX
from core.model.unet import CLASS_KEY, GUIDANCE_KEY
from core.training.distill import student_of
from support import TEST_MODEL

WEIGHTS = torch.tensor([[0.0] * 9 + [1.0], [0.0, 1.0] + [0.0] * 8, [0.0] * 7 + [0.4, 0.0, 0.6]])  # boot, trouser, a mix


@pytest.fixture(scope="module")
def teacher():
    return load_generator(TEST_MODEL)


def _inputs(seed=0):
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return x, torch.tensor([999, 400, 20])


@pytest.mark.parametrize("g", [0.0, 1.75, 4.0])
def test_a_fresh_student_is_exactly_its_teachers_conditional_model_at_any_g(teacher, g):
    student = student_of(teacher).to(memory_format=torch.channels_last).eval()  # as load_generator lays out the teacher
    x, t = _inputs()
    with torch.no_grad():
        expected = teacher.denoiser.guided.model(x, t, {CLASS_KEY: teacher.denoiser.class_embedding(WEIGHTS, STUDENT_MIX)})
        found = student(x, t, {"class_weights": WEIGHTS, GUIDANCE_KEY: torch.full((3,), g)})
        viewed = student.with_guidance(g)(x, t, {"class_weights": WEIGHTS})  # g from the view: the sampler's way
    assert torch.equal(found.prediction, expected.prediction) and torch.equal(viewed.prediction, expected.prediction)


def test_a_student_takes_each_items_g_and_one_row_per_item(teacher, monkeypatch):
    student = student_of(teacher).eval()
    with torch.no_grad():
        student.guided.model.guidance_embedding.mlp[2].weight.normal_(0, 0.05)
    rows = []
    real = student.guided.model.forward
    monkeypatch.setattr(student.guided.model, "forward", lambda x, t, c: rows.append(len(x)) or real(x, t, c))
    x, t = _inputs(1)
    g = torch.tensor([0.0, 2.0, 4.0])
    with torch.no_grad():
        together = student(x, t, {"class_weights": WEIGHTS, GUIDANCE_KEY: g}).prediction
        alone = [student.with_guidance(float(v))(x[i:i + 1], t[i:i + 1], {"class_weights": WEIGHTS[i:i + 1]}).prediction
                 for i, v in enumerate(g)]
    assert rows == [3, 1, 1, 1]  # never CFG's doubled batch, and a mix is one row too
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
    assert not torch.allclose(alone[0], student.with_guidance(4.0)(x[:1], t[:1], {"class_weights": WEIGHTS[:1]}).prediction, atol=1e-4)


def test_a_teacher_takes_each_items_g_as_cfg_at_that_g(teacher):
    """What the pairs rely on: per-item g through the denoiser equals one view per g, composed mixes included."""
    view = teacher.denoiser.with_guidance(1.75, (21, 400), "compose")
    x, _ = _inputs(2)
    t = torch.full((3,), 300)
    g = torch.tensor([0.0, 1.0, 3.5])
    with torch.no_grad():
        together = view(x, t, {"class_weights": WEIGHTS, GUIDANCE_KEY: g}).prediction
        alone = [teacher.denoiser.with_guidance(float(v), (21, 400), "compose")(x[i:i + 1], t[i:i + 1],
                                                                                 {"class_weights": WEIGHTS[i:i + 1]}).prediction
                 for i, v in enumerate(g)]
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
    assert not torch.allclose(together, view(x, t, {"class_weights": WEIGHTS}).prediction, atol=1e-4)  # not the view's g


def test_configs_and_files_without_the_key_load_as_generators_without_the_input(teacher, tmp_path):
    old = as_dict(ModelConfig())
    del old["guidance_input"]
    assert from_dict(ModelConfig, old).guidance_input is False
    assert teacher.model_config.guidance_input is False and teacher.denoiser.guided.model.guidance_embedding is None
    assert not any("guidance_embedding" in key for key in teacher.denoiser.state_dict())
    student = student_of(teacher)
    assert student.guided.model.config == dataclasses.replace(teacher.model_config, guidance_input=True)
    assert not student.guided.train_unconditional_embedding[CLASS_KEY].requires_grad  # a student never calls it
