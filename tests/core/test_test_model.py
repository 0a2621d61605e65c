"""The test model (tests/data/test-model.pt) draws other pixels for every field of a request.

The app and recipe tests check that a setting reached the sampler by comparing pixels, and that
checks a field only if changing it changes the pixels. An untrained model fails this (its output
layer starts at zero: tiny_checkpoint draws the same pixels for every class, guidance and mix), so
this file holds the test model to it, field by field: it can never silently become input-blind.
"""

import dataclasses
import os

import pytest
import torch

from core.images import to_uint8
from core.sampling.limits import DEFAULT_INIT_STRENGTH, DEFAULT_SWITCH_AT
from core.sampling.request import SampleRequest, blend_weights
from core.sampling.samplers import sample

SNEAKER_BOOT = [0.0] * 7 + [0.6, 0.0, 0.4]
BOOT = [0.0] * 9 + [1.0]
PICTURE = bytes(range(256)) * 3 + bytes(16)  # 28x28 grey levels: a steering source picture
# the app tests' settings (tests/tui/conftest.py SMALL: DDIM, 4 steps) with two classes picked, so
# that the mix method matters; DDIM 4 evaluates t = 999, 749, 500, 250, so (21, 400) guides one step
BASE = dict(class_weights=SNEAKER_BOOT, n=2, guidance=2.0, sampler="ddim", steps=4, seed=3, shared_noise=False,
            per_item_weights=None, guidance_interval=(21, 400), black_level=4, mix="compose", autoguidance=0.0,
            precision="fp32", variation_seed=None, variation_strength=0.0, init_image=None,
            init_strength=DEFAULT_INIT_STRENGTH, switch_to=None, switch_at=DEFAULT_SWITCH_AT)
# each field changed alone, and what to; a field that acts only beside another (a variation's seed,
# the source picture's strength, the switch's point) is changed with that one already on in both.
# "n" is not here: item i's pixels never depend on n
CHANGES = [
    ("class_weights", [0.6, 0.4] + [0.0] * 8, {}),  # other classes, the same shares
    ("class_weights", [0.0] * 7 + [0.4, 0.0, 0.6], {}),  # the same classes, other shares
    ("guidance", 0.0, {}),
    ("guidance", 4.0, {}),
    ("guidance_interval", None, {}),
    ("guidance_interval", (0, 600), {}),
    ("mix", "average", {}),
    ("mix", "norm", {}),
    ("mix", "compose-all", {}),
    ("autoguidance", 0.5, {}),
    ("sampler", "dpm", {}),
    ("sampler", "ddpm", {}),
    ("steps", 6, {}),
    ("seed", 4, {}),
    ("black_level", 20, {}),
    ("shared_noise", True, {}),
    ("per_item_weights", blend_weights(7, 9, 2), {}),
    ("variation_seed", 78, {"variation_seed": 77, "variation_strength": 0.3}),
    ("variation_strength", 0.6, {"variation_seed": 77, "variation_strength": 0.3}),
    ("init_image", PICTURE, {}),
    ("init_strength", 0.9, {"init_image": PICTURE}),
    ("switch_to", BOOT, {}),
    ("switch_at", 0.75, {"switch_to": BOOT}),
]
MIN_CHANGE = 1.5  # mean |change| in grey levels (of 255) over every pixel; the smallest is ~2, most are 5-60
# fields that change only the arithmetic, so the pixels move, but by less than a grey level on average
NUMERIC_CHANGES = [("precision", "bf16", {})]


def pixels(generator, **fields) -> torch.Tensor:
    return to_uint8(sample(generator, SampleRequest(**(BASE | fields)))[:, 0]).float()  # (n, 28, 28) grey levels


@pytest.fixture(scope="module")
def base_pixels(trained):
    return pixels(trained)


def test_every_request_field_is_exercised():
    fields = {field.name for field in dataclasses.fields(SampleRequest)}
    assert set(BASE) == fields and {name for name, _, _ in CHANGES + NUMERIC_CHANGES} == fields - {"n"}


def ids(changes) -> list[str]:
    return [f"{name}={'picture' if isinstance(value, bytes) else value}" for name, value, _ in changes]


@pytest.mark.parametrize("field, value, on", CHANGES, ids=ids(CHANGES))
def test_each_field_changed_alone_moves_the_pixels(trained, base_pixels, field, value, on):
    before = pixels(trained, **on) if on else base_pixels
    change = (pixels(trained, **(on | {field: value})) - before).abs().mean()
    assert change >= MIN_CHANGE, f"{field}={value!r} moved the pixels by only {change:.2f} grey levels"


@pytest.mark.parametrize("field, value, on", NUMERIC_CHANGES, ids=ids(NUMERIC_CHANGES))
def test_each_numeric_field_changed_alone_moves_the_pixels_a_little(trained, base_pixels, field, value, on):
    assert not torch.equal(pixels(trained, **(on | {field: value})), base_pixels)


def test_the_same_request_gives_the_same_pixels(trained, base_pixels):
    assert torch.equal(pixels(trained), base_pixels)


def test_the_files_are_small_and_the_guide_loads_beside_the_model(trained, trained_checkpoint):
    guide = trained.guide
    assert guide is not None and guide.path == trained_checkpoint.with_name("test-model-guide.pt")
    assert guide.hash != trained.hash and trained.info["step"] > guide.info["step"]  # an earlier, weaker self
    assert trained.model_config == guide.model_config and trained.info["preset"] == "tiny"
    for path in (trained_checkpoint, guide.path):
        assert os.path.getsize(path) < 400_000
