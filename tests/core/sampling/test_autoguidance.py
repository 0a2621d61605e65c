"""Autoguidance beside CFG on the test model and its guide: the maths at one call, where it acts, the request."""

import dataclasses

import pytest
import torch

from core.model.unet import CLASS_KEY
from core.sampling.request import SampleRequest, SampleRequestError
from core.sampling.samplers import sample

BOOT = [0.0] * 9 + [1.0]
SNEAKER_BOOT = [0.0] * 7 + [0.5, 0.0, 0.5]


@pytest.fixture(scope="module")
def guided(trained):
    """The test model with its guide (the same run, earlier: tests/make_test_model.py)."""
    return trained


@pytest.fixture(scope="module")
def alone(trained):
    """The test model without a guide."""
    return dataclasses.replace(trained, guide=None)


def _conditional(denoiser, x, t, embedding):
    with torch.no_grad():
        return denoiser.guided.model(x, t, {CLASS_KEY: embedding}).prediction


@pytest.mark.parametrize("t, inside", [(300, True), (700, False)])
@pytest.mark.parametrize("weights", [BOOT, SNEAKER_BOOT])
def test_one_call_is_cfg_plus_the_push_away_from_the_guide(guided, t, inside, weights):
    g, w = 1.5, 0.75
    main, weak = guided.denoiser, guided.guide.denoiser
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    times = torch.tensor([t])
    picked = {k: v for k, v in enumerate(weights) if v}
    c = sum(v * _conditional(main, x, times, main.class_encoder.weight[k:k + 1]) for k, v in picked.items())
    c_guide = sum(v * _conditional(weak, x, times, weak.class_encoder.weight[k:k + 1]) for k, v in picked.items())
    u = _conditional(main, x, times, main.guided.eval_unconditional_embedding[CLASS_KEY])
    cond = {"class_weights": torch.tensor([weights])}
    with torch.no_grad():
        auto = main.with_guidance(g, (21, 400), "compose", guide=weak, guide_weight=w).eval()(x, times, cond).prediction
        cfg = main.with_guidance(g, (21, 400), "compose").eval()(x, times, cond).prediction
    if inside:
        assert torch.allclose(auto, c + g * (c - u) + w * (c - c_guide), atol=1e-5)
        assert not torch.allclose(auto, cfg, atol=1e-3)
    else:  # outside the guidance interval neither guidance acts: exactly the CFG view's plain prediction
        assert torch.equal(auto, cfg)


def test_weight_zero_or_no_guide_is_exactly_cfg(guided, alone):
    request = dict(n=2, steps=4, seed=3)
    plain = sample(alone, SampleRequest(SNEAKER_BOOT, **request))
    assert torch.equal(sample(guided, SampleRequest(SNEAKER_BOOT, **request)), plain)
    assert torch.equal(sample(guided, SampleRequest(SNEAKER_BOOT, autoguidance=0.0, **request)), plain)
    auto = sample(guided, SampleRequest(SNEAKER_BOOT, autoguidance=1.0, **request))
    assert auto.shape == plain.shape and bool(torch.isfinite(auto).all()) and not torch.equal(auto, plain)


@pytest.mark.parametrize("sampler", ["dpm", "ddim", "ddpm"])
def test_every_sampler_autoguides_reproducibly(guided, sampler):
    request = dict(n=2, steps=5, seed=4, sampler=sampler, guidance_interval=None)
    first = sample(guided, SampleRequest(BOOT, autoguidance=0.5, **request))
    assert torch.equal(sample(guided, SampleRequest(BOOT, autoguidance=0.5, **request)), first)
    assert not torch.allclose(first, sample(guided, SampleRequest(BOOT, **request)), atol=1e-4)  # and it acts


def test_the_guide_is_not_part_of_the_model(guided):
    view = guided.denoiser.with_guidance(1.0, (21, 400), "compose", guide=guided.guide.denoiser, guide_weight=1.0)
    assert view.state_dict().keys() == guided.denoiser.state_dict().keys()


@pytest.mark.parametrize("value", [-0.5, 10.5, float("nan"), True, "1"])
def test_bad_weights_are_refused_in_one_line(value):
    with pytest.raises(SampleRequestError, match="autoguidance must be between 0 and 10"):
        SampleRequest(BOOT, autoguidance=value).validate()


def test_autoguidance_without_a_guide_says_so(alone):
    with pytest.raises(SampleRequestError, match="needs a guide model"):
        sample(alone, SampleRequest(BOOT, n=1, steps=2, autoguidance=1.0))
