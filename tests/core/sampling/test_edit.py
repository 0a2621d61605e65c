"""Edits from a picture (SDEdit): noised to the strength's timestep on the sampler's grid, then
denoised towards the request's classes; and the denoising film that shows it."""

import dataclasses
import json
import math

import pytest
import torch

from core.images import read_metadata, to_uint8
from core.sampling import steering
from core.sampling.recipes import export_items, recipe, request_from_recipe
from core.sampling.request import SampleRequest, SampleRequestError
from core.sampling.samplers import eval_steps_for, model_timesteps, sample, sample_films, sample_steps

SNEAKER = [0.0] * 7 + [1.0, 0.0, 0.0]
BOOT = [0.0] * 9 + [1.0]


def request(**fields) -> SampleRequest:
    return SampleRequest(BOOT, **({"n": 3, "sampler": "ddim", "steps": 10, "seed": 4, "precision": "fp32"} | fields))


@pytest.fixture(scope="module")
def sneaker(trained) -> bytes:
    """A sneaker the test model drew: 784 grey levels."""
    return to_uint8(sample(trained, SampleRequest(SNEAKER, n=1, sampler="ddim", steps=10, seed=1, precision="fp32"))[0, 0]).numpy().tobytes()


def source_tensor(pixels: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(pixels), dtype=torch.uint8).float().div(127.5).sub(1).reshape(1, 1, 28, 28)


@pytest.mark.parametrize("sampler, steps, strength, first, calls", [
    ("dpm", 20, 0.6, 599, 12), ("ddim", 10, 0.6, 599, 6), ("ddpm", 10, 0.6, 555, 6), ("dpm", 20, 1.0, 999, 20),
    ("ddim", 10, 0.05, 0, 0),  # below the grid's first step: nothing to denoise
])
def test_an_edit_starts_at_the_largest_grid_timestep_within_its_strength(sampler, steps, strength, first, calls):
    start = steering.edit_start(request(init_image=bytes(784), init_strength=strength), 1000)
    assert start == math.floor(strength * 1000)
    timesteps = model_timesteps(sampler, eval_steps_for(sampler, steps, 1000, start))
    full = model_timesteps(sampler, eval_steps_for(sampler, steps, 1000))
    assert len(timesteps) == calls and timesteps == [t for t in full if t <= start][:calls]
    if calls:
        assert timesteps[0] == first


@pytest.mark.parametrize("sampler", ["dpm", "ddim", "ddpm"])
def test_the_first_model_call_sees_the_picture_noised_with_the_items_own_draw(trained, sneaker, sampler):
    edit = request(sampler=sampler, init_image=sneaker, init_strength=0.5)
    first = next(sample_steps(trained, edit, film=True))
    abar = float(trained_schedule(trained).alphas_cumprod[first.t])
    eps = torch.stack([torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(4 + i)) for i in range(3)])
    expected = math.sqrt(abar) * source_tensor(sneaker) + math.sqrt(1 - abar) * eps
    assert first.t <= 500 and torch.allclose(first.x_in, expected, atol=1e-5)


def trained_schedule(generator):
    from core.model.diffusion import make_schedule

    return make_schedule(generator.diffusion_config)


def test_strength_0_gives_the_picture_and_more_strength_strays_further(trained, sneaker):
    zero = sample(trained, request(init_image=sneaker, init_strength=0.0))
    assert torch.equal(to_uint8(zero[:, 0]), torch.frombuffer(bytearray(sneaker), dtype=torch.uint8).reshape(1, 28, 28).expand(3, -1, -1))
    source = source_tensor(sneaker)
    distance = {s: float((sample(trained, request(init_image=sneaker, init_strength=s)) - source).abs().mean())
                for s in (0.3, 0.6, 0.9)}
    plain = float((sample(trained, request()) - source).abs().mean())
    assert distance[0.3] < distance[0.6] < distance[0.9] < plain, (distance, plain)


def test_an_edit_costs_its_share_of_the_steps(trained, sneaker):
    steps = list(sample_steps(trained, request(sampler="dpm", steps=20, init_image=sneaker, init_strength=0.3)))
    assert len(steps) == 6 and steps[0].t == 300 and steps[-1].done


@pytest.mark.parametrize("fields, fragment", [
    ({"init_image": bytes(783)}, "an init image must be 28x28 grey levels"),
    ({"init_image": "not bytes" * 100}, "an init image must be 28x28 grey levels"),
    ({"init_image": bytes(784), "init_strength": 1.01}, "edit strength must be between 0 and 1"),
    ({"init_image": bytes(784), "init_strength": -0.5}, "edit strength must be between 0 and 1"),
    ({"init_image": bytes(784), "init_strength": float("inf")}, "edit strength must be between 0 and 1"),
])
def test_bad_edits_are_refused_in_one_line(fields, fragment):
    with pytest.raises(SampleRequestError, match=fragment):
        request(**fields).validate()


def test_the_exported_recipe_carries_the_picture_and_reproduces_the_pixels_alone(trained, sneaker, tmp_path):
    edit = request(init_image=sneaker, init_strength=0.55).validate()
    images = sample(trained, edit)
    item, grid = export_items(images, edit, tmp_path, trained.hash, str(trained.path), items=[2])
    data = read_metadata(item)
    assert len(json.dumps(data)) < 4000  # 784 grey levels fit a PNG text chunk (base64)
    again, index = request_from_recipe(data)
    assert again.init_image == sneaker and again.init_strength == 0.55 and index == 2
    assert torch.equal(sample(trained, again), images)


def test_a_damaged_picture_in_a_recipe_is_refused():
    data = recipe(request(init_image=bytes(784)).validate(), "0123456789abcdef", None)
    for bad in ("@@not base64@@", 12, "AAAA"):
        with pytest.raises(ValueError):
            request_from_recipe(data | {"init_image": bad})


@pytest.mark.parametrize("sampler", ["dpm", "ddim", "ddpm"])
def test_the_film_changes_no_pixel_and_shows_x_t_and_the_predicted_x0(trained, sneaker, sampler):
    edit = request(sampler=sampler, init_image=sneaker, init_strength=0.7, switch_to=SNEAKER, switch_at=0.5)
    plain = sample(trained, edit)
    images, films = sample_films(trained, dataclasses.replace(edit))
    assert torch.equal(images, plain) and len(films) == 3
    steps = list(sample_steps(trained, dataclasses.replace(edit), film=True))
    assert len(films[1]) == len(steps) + 1 and films[1][-1][0] == "done"
    assert torch.equal(films[1][-1][1], to_uint8(plain[1, 0]))
    for step, (label, x_t, x0) in zip(steps, films[1]):
        assert label == f"step {step.index}/{step.total}  t={step.t}"
        assert torch.equal(x_t, to_uint8(step.x_in[1, 0])) and torch.equal(x0, to_uint8(step.x0_pred[1, 0]))
    assert steps[0].x0_pred.abs().max() <= 1  # the predictor's clamped x0
    assert (steps[-1].x0_pred - steps[0].x0_pred).abs().mean() > 0.05  # it sharpens as the steps go
    assert (steps[-1].x0_pred - plain).abs().mean() < 0.03  # the last call predicts the finished items
    assert (steps[0].x0_pred - steps[0].x_in.clamp(-1, 1)).abs().mean() > 0.1  # a prediction, not the noisy x_t


def test_the_film_is_opt_in(trained):
    step = next(sample_steps(trained, request()))
    assert step.x_in is None and step.x0_pred is None
