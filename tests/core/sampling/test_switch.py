"""Class switches: the first round(switch_at * K) model calls ask for the request's classes, the rest
for switch_to; DPM-Solver++ restarts at first order at the switch."""

import dataclasses
import json

import pytest
import torch

from core.sampling import steering
from core.sampling.recipes import recipe, request_from_recipe
from core.sampling.request import SampleRequest, SampleRequestError
from core.sampling.samplers import sample, sample_steps

SNEAKER = [0.0] * 7 + [1.0, 0.0, 0.0]
BOOT = [0.0] * 9 + [1.0]
BAG_COAT = [0.0] * 4 + [0.5, 0.0, 0.0, 0.0, 0.5, 0.0]


def request(**fields) -> SampleRequest:
    return SampleRequest(**({"class_weights": SNEAKER, "n": 2, "sampler": "ddim", "steps": 10, "seed": 6, "precision": "fp32"}
                            | fields))


@pytest.mark.parametrize("sampler", ["dpm", "ddim", "ddpm"])
def test_switch_at_0_is_the_second_mix_and_at_1_the_first(trained, sampler):
    first, second = sample(trained, request(sampler=sampler)), sample(trained, request(sampler=sampler, class_weights=BOOT))
    assert torch.equal(sample(trained, request(sampler=sampler, switch_to=BOOT, switch_at=0.0)), second)
    assert torch.equal(sample(trained, request(sampler=sampler, switch_to=BOOT, switch_at=1.0)), first)
    middle = sample(trained, request(sampler=sampler, switch_to=BOOT, switch_at=0.5))
    assert not torch.equal(middle, first) and not torch.equal(middle, second)


@pytest.mark.parametrize("at, before", [(0.4, 4), (0.25, 3), (0.0, 0), (1.0, 10), (0.96, 10)])
def test_each_model_call_asks_for_the_mix_of_its_side_of_the_switch(trained, monkeypatch, at, before):
    asked = []
    forward = type(trained.denoiser).forward

    def spy(self, x, t, conditional_inputs):
        asked.append(conditional_inputs["class_weights"][0].argmax().item())
        return forward(self, x, t, conditional_inputs)

    monkeypatch.setattr(type(trained.denoiser), "forward", spy)
    list(sample_steps(trained, request(switch_to=BAG_COAT, switch_at=at, guidance_interval=None)))
    assert asked == [7] * before + [4] * (10 - before)  # coat (4) is the largest share of the then-mix


def test_dpm_solver_restarts_at_first_order_at_the_switch(trained):
    """A switch to the same classes changes no condition: only the solver's restart moves DPM-Solver++'s
    pixels, and DDIM (first order everywhere) keeps its own."""
    for sampler, moved in (("dpm", True), ("ddim", False)):
        plain = sample(trained, request(sampler=sampler, guidance_interval=None))
        same = sample(trained, request(sampler=sampler, guidance_interval=None, switch_to=SNEAKER, switch_at=0.5))
        assert torch.equal(plain, same) != moved, sampler
    same_model = steering.across_switch(lambda s, t: True, 500)
    assert same_model(900, 600) and same_model(500, 100) and not same_model(600, 500)


def test_a_switch_keeps_dpm_solvers_restarts_at_guidance_edges(trained):
    """The steered view keeps the guidance-interval edges of the view inside it."""
    edges = request(sampler="dpm", steps=20, guidance_interval=(21, 400))
    assert torch.equal(sample(trained, dataclasses.replace(edges, switch_to=SNEAKER, switch_at=1.0)), sample(trained, edges))


@pytest.mark.parametrize("fields, fragment", [
    ({"switch_to": BOOT, "switch_at": 1.5}, "switch point must be between 0 and 1"),
    ({"switch_to": BOOT, "switch_at": -0.01}, "switch point must be between 0 and 1"),
    ({"switch_to": BOOT, "switch_at": float("nan")}, "switch point must be between 0 and 1"),
    ({"switch_to": [1.0, 0.0]}, "switch classes: expected 10 class weights"),
    ({"switch_to": [0.0] * 10}, "switch classes"),
])
def test_bad_switches_are_refused_in_one_line(fields, fragment):
    with pytest.raises(SampleRequestError, match=fragment):
        request(**fields).validate()


def test_the_recipe_carries_the_switch_and_reproduces_its_pixels(trained):
    switched = request(switch_to=BAG_COAT, switch_at=0.3).validate()
    data = json.loads(json.dumps(recipe(switched, trained.hash, None)))
    assert "coat" in data["switch_to_classes"] and "bag" in data["switch_to_classes"]
    again, _ = request_from_recipe(data)
    assert again.switch_to == switched.switch_to and again.switch_at == 0.3
    assert torch.equal(sample(trained, again), sample(trained, switched))


def test_unused_steering_adds_nothing_to_the_sampling_loop(trained, monkeypatch):
    """Off, no steering object is made: the loop, and so the pixels and the time, are the ones before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("steering used by a plain request")

    for name in ("VariedNoise", "SteeredDenoiser", "noised_source", "image_tensor", "switch_timestep"):
        monkeypatch.setattr(steering, name, refuse)
    for sampler in ("dpm", "ddim", "ddpm"):
        sample(trained, request(sampler=sampler))
