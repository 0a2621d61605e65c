"""A request as a PNG's recipe and back: every field off its default comes back, and so do the pixels.

Off its default on purpose: a field the reader drops falls back to its default, so a round trip
of default values cannot tell a dropped field from a kept one.
"""

import dataclasses
import json

import pytest
import torch
from PIL import Image

from core.images import pixel_levels, read_metadata, to_uint8
from core.sampling.limits import DEFAULT_GUIDANCE, DEFAULT_STEPS
from core.sampling.recipes import export_items, recipe, request_from_recipe
from core.sampling.request import SampleRequest, blend_weights
from core.sampling.samplers import sample

PICTURE = bytes(range(256)) * 3 + bytes(16)  # 28x28 grey levels
# every field off its default (and off the sampler's own defaults for guidance and steps)
MIX = SampleRequest([0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0], n=3, guidance=3.25, sampler="ddim", steps=7,
                    seed=123456, guidance_interval=(50, 700), black_level=9, mix="norm", autoguidance=0.75,
                    precision="fp32", variation_seed=5, variation_strength=0.25, init_image=PICTURE, init_strength=0.8,
                    switch_to=[0.0] * 9 + [1.0], switch_at=0.55)
STRIP = SampleRequest(blend_weights(2, 8, 4)[0], n=4, guidance=0.5, sampler="ddpm", steps=6, seed=99, shared_noise=True,
                      per_item_weights=blend_weights(2, 8, 4), guidance_interval=None, black_level=0, mix="compose-all",
                      autoguidance=1.5, precision="bf16", variation_seed=0, variation_strength=1.0,
                      init_image=PICTURE[::-1], init_strength=0.35, switch_to=[0.5, 0.5] + [0.0] * 8, switch_at=0.25)
GUIDE = ("test-model-guide.pt", "0123456789abcdef")


def defaults(request: SampleRequest) -> SampleRequest:
    """The request with every field but the classes at its default."""
    return SampleRequest(request.class_weights, n=request.n).validate()


@pytest.mark.parametrize("request_", [MIX, STRIP], ids=["mix", "strip"])
def test_every_field_differs_from_its_default(request_):
    request, default = dataclasses.replace(request_).validate(), defaults(request_)
    same = [f.name for f in dataclasses.fields(SampleRequest)
            if f.name not in ("class_weights", "n") and getattr(request, f.name) == getattr(default, f.name)]
    if request.per_item_weights is None:
        same.remove("per_item_weights")  # MIX is no strip; STRIP covers it
        same.remove("shared_noise")
    assert same == []
    assert request.guidance != DEFAULT_GUIDANCE[request.sampler] and request.steps != DEFAULT_STEPS[request.sampler]


@pytest.mark.parametrize("request_", [MIX, STRIP], ids=["mix", "strip"])
@pytest.mark.parametrize("index", [None, 1])
def test_a_recipe_gives_back_every_field(request_, index):
    request = dataclasses.replace(request_).validate()
    data = json.loads(json.dumps(recipe(request, "0123456789abcdef", "/private/model.pt", index, GUIDE)))  # as a PNG holds it
    again, found = request_from_recipe(data)
    assert again.to_dict() == request.to_dict() and found == index
    assert data["guide"] == GUIDE[0] and data["guide_hash"] == GUIDE[1] and data["checkpoint"] == "model.pt"


@pytest.mark.parametrize("request_", [MIX, STRIP], ids=["mix", "strip"])
def test_each_field_alone_off_its_default_comes_back(request_):
    """One field changed at a time, the others at their defaults: a reader that drops a field while
    another one happens to carry the same value still fails here."""
    request = dataclasses.replace(request_).validate()
    for field in dataclasses.fields(SampleRequest):
        changes = {field.name: getattr(request, field.name)}
        partner = {"per_item_weights": "shared_noise", "variation_strength": "variation_seed"}.get(field.name)
        if partner:  # a strip shares its noise; a variation's strength needs its seed
            changes[partner] = getattr(request, partner)
        one = dataclasses.replace(defaults(request), **changes).validate()
        again, _ = request_from_recipe(json.loads(json.dumps(recipe(one, "0123456789abcdef", None, guide=GUIDE))))
        assert again.to_dict() == one.to_dict(), field.name


def test_an_exported_strip_and_its_item_reproduce_their_pixels(trained, tmp_path):
    request = dataclasses.replace(STRIP, steps=4, precision="fp32")
    images = sample(trained, request)
    paths = export_items(images, request, tmp_path, trained.hash, str(trained.path), items=[2], grid=True,
                         guide=trained.guide_identity())
    item, grid = paths
    for path, want in ((item, images[2:3]), (grid, images)):
        again, index = request_from_recipe(read_metadata(path))
        pixels = sample(trained, again)
        assert torch.equal(pixels if index is None else pixels[index:index + 1], want), path.name
    exported = pixel_levels(Image.open(item).convert("L"))  # (28, 28)
    assert torch.equal(exported, to_uint8(images[2, 0]))
