"""Sampling precision: auto resolves per device, a request's precision draws its pixels, and
recipes carry it (recipes from before it existed read back as fp32)."""

from __future__ import annotations

import platform

import pytest
import torch

import core.device as device_module
from core.checkpoint import load_generator
from core.device import resolve_precision
from core.sampling.recipes import recipe, request_from_recipe
from core.sampling.request import SampleRequest, SampleRequestError
from core.sampling.samplers import sample

BOOT = [0.0] * 9 + [1.0]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shipped():
    from core.checkpoint import default_checkpoint

    return load_generator(default_checkpoint())


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 feature flags")
@pytest.mark.parametrize("bf16, amx, expected", [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    precision, why = resolve_precision("auto", CPU)
    assert precision == expected and why.startswith("auto: ")
    assert resolve_precision("fp32", CPU) == ("fp32", "asked for")
    assert resolve_precision("bf16", CPU) == ("bf16", "asked for")


def test_a_bad_precision_is_one_line():
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, not 'fp16'"):
        resolve_precision("fp16", CPU)
    with pytest.raises(SampleRequestError, match="precision must be one of"):
        SampleRequest(BOOT, precision="half").validate()


def test_the_requested_precision_draws_the_pixels_and_the_request_says_which(shipped, monkeypatch):
    requests = {p: SampleRequest(BOOT, n=3, steps=6, seed=4, precision=p) for p in ("bf16", "fp32")}
    images = {p: sample(shipped, r) for p, r in requests.items()}
    again = sample(shipped, SampleRequest(BOOT, n=3, steps=6, seed=4, precision="bf16"))
    assert torch.equal(images["bf16"], again)  # the same precision gives the same pixels
    difference = (images["bf16"] - images["fp32"]).abs()
    assert 0 < difference.max() and difference.mean() < 2 / 127.5  # moved, by about a grey level or less
    monkeypatch.setattr(device_module, "native_bf16", lambda device: (False, "test"))
    auto = SampleRequest(BOOT, n=3, steps=6, seed=4)
    assert torch.equal(sample(shipped, auto), images["fp32"]) and auto.precision == "fp32"  # resolved, for the recipe


def test_recipes_carry_the_precision_and_old_ones_read_back_as_fp32():
    request = SampleRequest(BOOT, n=2, precision="bf16").validate()
    data = recipe(request, "abc", None)
    assert data["precision"] == "bf16" and request_from_recipe(data)[0].precision == "bf16"
    del data["precision"]  # a PNG exported before precision was recorded
    assert request_from_recipe(data)[0].precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        request_from_recipe({**data, "precision": 16})
