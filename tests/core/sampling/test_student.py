"""The student sampler: one call per item and step at its table's timesteps, DDIM on its x0 predictions
ending at x0 itself, its recipe, its refusals, and steering through it."""

import pytest
import torch

from core.checkpoint import CheckpointError, open_generator, student_path_for
from core.images import read_metadata, to_uint8
from core.sampling.limits import DEFAULT_STEPS, STUDENT, STUDENT_TIMESTEPS
from core.sampling.recipes import export_items, request_from_recipe
from core.sampling.request import SampleRequest, SampleRequestError, prefer_student
from core.sampling.samplers import ItemNoise, eval_steps_for, finish, sample, sample_steps

BOOT = [0.0] * 9 + [1.0]
SNEAKER_BOOT = [0.0] * 7 + [0.6, 0.0, 0.4]


def request(**fields) -> SampleRequest:
    return SampleRequest(fields.pop("class_weights", BOOT), **({"n": 2, "sampler": STUDENT, "seed": 3} | fields))


def count_calls(generator, monkeypatch) -> list[tuple[int, list[int]]]:
    """(rows, timesteps) of every call of the student's U-Net (shared by every view of it)."""
    unet, calls = generator.student.denoiser.guided.model, []
    real = unet.forward
    monkeypatch.setattr(unet, "forward", lambda x, t, c: calls.append((len(x), t.tolist())) or real(x, t, c))
    return calls


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_k_steps_make_k_calls_at_the_tables_timesteps_one_row_per_item(with_student, monkeypatch, steps):
    calls = count_calls(with_student, monkeypatch)
    teacher_calls = []
    monkeypatch.setattr(with_student.denoiser.guided.model, "forward", lambda *a: teacher_calls.append(1))
    # fp32 asked for: "auto" may time the teacher's call first (core.autotune), which this test forbids
    found = list(sample_steps(with_student, request(steps=steps, class_weights=SNEAKER_BOOT, precision="fp32")))
    assert [rows for rows, _ in calls] == [2] * steps and teacher_calls == []  # no CFG doubling, no per-class rows
    assert [t[0] for _, t in calls] == list(STUDENT_TIMESTEPS[steps]) == [step.t for step in found]
    assert found[-1].done and found[-1].x.shape == (2, 1, 28, 28)


def test_the_default_is_two_steps():
    assert request().validate().resolved_steps() == DEFAULT_STEPS[STUDENT] == 2


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_each_step_is_ddim_on_the_clamped_x0_and_the_last_returns_x0(with_student, steps):
    """By hand: x0 = clamp(a x - s v); eps = (x - a x0) / s; x' = a' x0 + s' eps; the last step's x0 is the item."""
    student, req = with_student.student, request(steps=steps, black_level=0, guidance=2.5, precision="fp32")
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    a, s = abar.sqrt(), (1 - abar).sqrt()
    x = ItemNoise(req.seed, req.n, False)((req.n, 1, 28, 28))
    view = student.denoiser.with_guidance(2.5)
    condition = {"class_weights": torch.tensor([BOOT] * req.n)}
    grid = STUDENT_TIMESTEPS[steps]
    with torch.no_grad():
        for t, following in zip(grid, [*grid[1:], None]):
            v = view(x, torch.full((req.n,), t), condition).prediction.double()
            x0 = (a[t] * x.double() - s[t] * v).clamp(-1, 1)
            if following is not None:
                x = (a[following] * x0 + s[following] * (x.double() - a[t] * x0) / s[t]).float()
    assert torch.allclose(sample(with_student, req), finish(x0.float(), 0), atol=1e-4)


def test_guidance_reaches_the_student(with_student):
    assert not torch.allclose(sample(with_student, request(guidance=0.5)), sample(with_student, request(guidance=3.5)), atol=1e-3)


def test_the_recipe_names_the_student_and_reproduces_its_pixels(with_student, tmp_path):
    req = request(n=3, steps=3, guidance=2.25, class_weights=SNEAKER_BOOT, seed=41)
    pixels = sample(with_student, req)
    paths = export_items(pixels, req, tmp_path, with_student.hash, str(with_student.path),
                         guide=with_student.guide_identity(), student=with_student.student_identity())
    data = read_metadata(paths[1])
    assert data["sampler"] == STUDENT and data["steps"] == 3 and data["guidance"] == 2.25
    assert data["student"] == "test-model-student.pt" and data["student_hash"] == with_student.student.hash
    assert "guide_hash" not in data  # no autoguidance asked for
    again, index = request_from_recipe(data)
    assert index == 1 and again.sampler == STUDENT and again.steps == 3
    assert torch.equal(to_uint8(sample(with_student, again)[1, 0]), to_uint8(pixels[1, 0]))


def test_without_a_student_it_says_so_in_one_line(trained):
    with pytest.raises(SampleRequestError, match="needs a student model") as info:
        sample(trained, request())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fields, fragment", [
    ({"autoguidance": 0.5}, "autoguidance is folded out of the student"),
    ({"guidance_interval": (0, 500)}, "default interval"),
    ({"guidance_interval": None}, "default interval"),
    ({"guidance": 4.5}, "learned guidance 0-4"),
    ({"mix": "norm"}, "compose mixes only"),
    ({"steps": 0}, "steps must be 1-4 for the student"),
    ({"steps": 5}, "steps must be 1-4 for the student"),
])
def test_what_the_student_did_not_learn_is_refused_in_one_line(fields, fragment):
    with pytest.raises(SampleRequestError, match=fragment) as info:
        request(**fields).validate()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_one_to_four_steps_are_accepted_and_one_stays_refused_elsewhere(steps):
    assert request(steps=steps).validate().steps == steps
    with pytest.raises(SampleRequestError, match="steps must be 2-1000"):
        request(sampler="dpm", steps=1).validate()


@pytest.mark.parametrize("start, expected", [(None, [0, 499, 999]), (1000, [0, 499, 999]), (600, [0, 499, 600]),
                                             (499, [0, 499]), (300, [0, 300]), (0, [0])])
def test_an_edit_starts_at_its_own_timestep_then_the_grid_below(start, expected):
    assert eval_steps_for(STUDENT, 2, 1000, start).tolist() == expected


def test_an_edit_class_switch_variation_and_film_go_through_the_student(with_student, monkeypatch):
    picture = bytes(range(256)) * 3 + bytes(16)
    calls = count_calls(with_student, monkeypatch)
    edited = list(sample_steps(with_student, request(steps=4, init_image=picture, init_strength=0.6)))
    assert [t for _, (t, *_) in calls] == [600, 499, 249] == [step.t for step in edited]
    plain = sample(with_student, request())
    switched = sample(with_student, request(switch_to=[0.0, 1.0] + [0.0] * 8, switch_at=0.5))
    varied = sample(with_student, request(variation_seed=9, variation_strength=1.0, shared_noise=True))
    assert not torch.allclose(switched, plain, atol=1e-3) and not torch.allclose(varied, plain, atol=1e-3)
    film = list(sample_steps(with_student, request(), film=True))
    assert film[-1].x0_pred.shape == (2, 1, 28, 28)


def test_the_student_beside_the_model_is_found_and_a_non_student_is_refused(student_checkpoint, trained_checkpoint):
    assert student_path_for(student_checkpoint).name == "test-model-student.pt"
    assert open_generator(student_checkpoint).student.model_config.guidance_input
    with pytest.raises(CheckpointError, match="is not a student") as info:
        open_generator(student_checkpoint, student=trained_checkpoint)
    assert "\n" not in str(info.value)



@pytest.mark.parametrize("fields", [{}, {"steps": 1}, {"steps": 4, "guidance": 3.0}, {"init_strength": 0.6}])
def test_a_request_naming_no_sampler_goes_to_the_student_where_it_can_draw_it(fields):
    asked = SampleRequest(BOOT, n=2, **fields)  # sampler left at its default, nothing validated yet
    chosen = prefer_student(asked, has_student=True)
    assert chosen.sampler == STUDENT and chosen.resolved_steps() == fields.get("steps", DEFAULT_STEPS[STUDENT])
    assert chosen.guidance == fields.get("guidance", 1.75)
    if fields.get("steps") == 1:  # no student: one step is nobody's, and says so in one line
        with pytest.raises(SampleRequestError, match="steps must be 2-1000"):
            prefer_student(asked, has_student=False)
    else:
        assert prefer_student(asked, has_student=False).sampler == "dpm"  # no student: the teacher's default


@pytest.mark.parametrize("fields", [{"autoguidance": 0.5}, {"steps": 20}, {"mix": "norm"}, {"guidance": 6.0},
                                    {"guidance_interval": None}])
def test_what_the_student_refuses_keeps_the_teacher_when_no_sampler_is_named(fields):
    chosen = prefer_student(SampleRequest(BOOT, n=2, **fields), has_student=True)
    assert chosen.sampler == "dpm" and all(getattr(chosen, name) == value for name, value in fields.items())
