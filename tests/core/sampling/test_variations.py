"""Variations: every noise draw of item i is slerp(strength, its own draw, the draw of variation_seed + i)."""

import dataclasses
import json

import pytest
import torch

from core.sampling import steering
from core.sampling.recipes import recipe, request_from_recipe
from core.sampling.request import SampleRequest, SampleRequestError
from core.sampling.samplers import ItemNoise, sample

SNEAKER = [0.0] * 7 + [1.0, 0.0, 0.0]
SAMPLERS = [("dpm", 6), ("ddim", 5), ("ddpm", 8)]


def request(sampler: str = "ddim", steps: int = 5, **fields) -> SampleRequest:
    return SampleRequest(SNEAKER, **({"n": 3, "sampler": sampler, "steps": steps, "seed": 11, "precision": "fp32"} | fields))


def test_slerp_keeps_the_noise_standard_normal_and_its_ends_exact():
    a, b = torch.randn(2000, 784, generator=torch.Generator().manual_seed(0)).chunk(2)
    assert torch.equal(steering.slerp(0.0, a, b), a) and torch.equal(steering.slerp(1.0, a, b), b)
    for strength in (0.1, 0.5, 0.9):
        mixed = steering.slerp(strength, a, b)
        assert abs(float(mixed.std()) - 1) < 0.01 and abs(float(mixed.mean())) < 0.01  # a straight mix at 0.5: std 0.71
        low, high = torch.minimum(a.norm(dim=1), b.norm(dim=1)), torch.maximum(a.norm(dim=1), b.norm(dim=1))
        assert (mixed.norm(dim=1) >= 0.99 * low).all() and (mixed.norm(dim=1) <= 1.01 * high).all()  # no shrinking
    assert torch.allclose(steering.slerp(0.3, a, a), a, atol=1e-6)  # parallel rows: a straight line, no division by zero


def test_varied_noise_mixes_every_draw_of_each_item():
    own, variation = ItemNoise(5, 2, shared=True), ItemNoise(40, 2, shared=False)
    varied = steering.VariedNoise(own, variation, 0.25)
    first, second = varied((2, 1, 28, 28)), varied((2, 1, 28, 28))
    own, variation = ItemNoise(5, 2, shared=True), ItemNoise(40, 2, shared=False)
    for drawn in (first, second):
        assert torch.equal(drawn, steering.slerp(0.25, own((2, 1, 28, 28)), variation((2, 1, 28, 28))))
    assert not torch.equal(first[0], first[1])  # a shared parent, but each variation its own seed


@pytest.mark.parametrize("sampler, steps", SAMPLERS)
def test_strength_0_is_the_parent_and_strength_1_the_variation_seeds_own_items(trained, sampler, steps):
    parent = sample(trained, request(sampler, steps))[:1]  # item 0 of seed 11
    zero = sample(trained, request(sampler, steps, shared_noise=True, variation_seed=500, variation_strength=0.0))
    assert torch.equal(zero, parent.expand(3, -1, -1, -1))
    one = sample(trained, request(sampler, steps, shared_noise=True, variation_seed=500, variation_strength=1.0))
    plain = sample(trained, dataclasses.replace(request(sampler, steps), seed=500))  # DDPM's every step too
    assert torch.equal(one, plain)
    half = sample(trained, request(sampler, steps, shared_noise=True, variation_seed=500, variation_strength=0.5))
    assert not torch.equal(half, plain) and not torch.equal(half[:1], parent)


def test_small_strength_variations_stay_nearer_their_parent_than_any_other_parent(trained):
    parents = sample(trained, dataclasses.replace(request(), n=4, seed=20))  # parent p is seed 20 + p
    for p in range(4):
        items = sample(trained, request(seed=20 + p, shared_noise=True, variation_seed=900 + 10 * p, variation_strength=0.1))
        distances = torch.cdist(items.flatten(1), parents.flatten(1))  # (3 variations, 4 parents)
        assert (distances.argmin(dim=1) == p).all(), distances
        assert not torch.equal(items[0], items[1])


@pytest.mark.parametrize("fields, fragment", [
    ({"variation_seed": 1, "variation_strength": 1.5}, "variation strength must be between 0 and 1"),
    ({"variation_seed": 1, "variation_strength": -0.1}, "variation strength must be between 0 and 1"),
    ({"variation_seed": 1, "variation_strength": float("nan")}, "variation strength must be between 0 and 1"),
    ({"variation_seed": 1, "variation_strength": True}, "variation strength must be between 0 and 1"),
    ({"variation_strength": 0.2}, "a variation strength needs a variation seed"),
    ({"variation_seed": -1, "variation_strength": 0.2}, "variation seed must be a whole number"),
    ({"variation_seed": 2**31, "variation_strength": 0.2}, "variation seed must be a whole number"),
])
def test_bad_variations_are_refused_in_one_line(fields, fragment):
    with pytest.raises(SampleRequestError, match=fragment) as error:
        request(**fields).validate()
    assert "\n" not in str(error.value)


def test_the_recipe_carries_the_variation_and_reproduces_its_pixels(trained):
    varied = request(shared_noise=True, variation_seed=77, variation_strength=0.35).validate()
    data = json.loads(json.dumps(recipe(varied, trained.hash, str(trained.path), index=1)))
    assert (data["variation_seed"], data["variation_strength"], data["shared_noise"]) == (77, 0.35, True)
    again, index = request_from_recipe(data)
    assert index == 1 and torch.equal(sample(trained, again), sample(trained, varied))


def test_a_recipe_from_before_variations_reads_back_without_one():
    data = recipe(request().validate(), "0123456789abcdef", None)
    for key in ("variation_seed", "variation_strength", "init_image", "init_strength", "switch_to", "switch_at"):
        del data[key]
    again, _ = request_from_recipe(data)
    assert again.variation_seed is None and again.variation_strength == 0 and again.init_image is None
    assert again.switch_to is None
