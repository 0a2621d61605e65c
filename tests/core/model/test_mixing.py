"""Class mixing methods on the test model: shapes, weights, exactness for one class, the maths."""

import dataclasses

import pytest
import torch

from core.model import mixing
from core.checkpoint import find_by_hash, file_hash
from core.classes import DEFAULT_MIX, LEGACY_MIX, MIX_METHODS
from core.sampling.recipes import recipe, request_from_recipe
from core.model.unet import CLASS_KEY
from core.sampling.request import SampleRequest, SampleRequestError, blend_weights
from core.sampling.samplers import sample

BOOT = [0.0] * 9 + [1.0]
SNEAKER_BOOT = [0.0] * 7 + [0.5, 0.0, 0.5]
THREE = [0.2, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.5, 0.0, 0.0]


@pytest.fixture(scope="module")
def model(trained):
    return dataclasses.replace(trained, guide=None)


def test_methods_and_defaults():
    assert set(MIX_METHODS) == {"compose", "norm", "average", "compose-all"}
    assert DEFAULT_MIX == "compose" and LEGACY_MIX == "average"
    assert SampleRequest(BOOT).mix == DEFAULT_MIX
    with pytest.raises(SampleRequestError, match="mix method must be one of"):
        SampleRequest(BOOT, mix="blend").validate()


def test_embeddings_keep_their_length_only_under_norm():
    table = torch.tensor([[3.0, 0.0], [0.0, 4.0]] + [[1.0, 1.0]] * 8)
    weights = torch.zeros(3, 10)
    weights[0, 0] = weights[0, 1] = 0.5
    weights[1, 1] = 1.0
    weights[2, 0], weights[2, 1] = 0.25, 0.75
    average, norm = mixing.embed(weights, table, "average"), mixing.embed(weights, table, "norm")
    assert average.shape == norm.shape == (3, 2)
    assert torch.allclose(average[0], torch.tensor([1.5, 2.0]))
    assert torch.allclose(norm.norm(dim=1), torch.tensor([3.5, 4.0, 0.25 * 3 + 0.75 * 4]))
    assert torch.allclose(norm[0] / norm[0].norm(), average[0] / average[0].norm())  # same direction
    assert torch.equal(norm[1], table[1]) and torch.equal(average[1], table[1])


def test_composed_pairs_carry_each_items_weights():
    weights = torch.tensor([SNEAKER_BOOT, BOOT, THREE])
    items, classes, pair_weights = mixing.composed_pairs(weights)
    assert items.tolist() == [0, 0, 1, 2, 2, 2] and classes.tolist() == [7, 9, 9, 0, 5, 7]
    sums = mixing.weighted_sum(torch.ones(6), items, pair_weights, 3)
    assert torch.allclose(sums, torch.ones(3))  # each item's weights sum to 1


@pytest.mark.parametrize("method", MIX_METHODS)
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_one_class_is_the_plain_class_under_every_method(model, method, sampler):
    plain = sample(model, SampleRequest(BOOT, n=2, steps=4, sampler=sampler, seed=3, mix=LEGACY_MIX))
    assert torch.equal(sample(model, SampleRequest(BOOT, n=2, steps=4, sampler=sampler, seed=3, mix=method)), plain)


@pytest.mark.parametrize("method", MIX_METHODS)
def test_every_method_samples_mixes_and_strips(model, method):
    images = sample(model, SampleRequest(THREE, n=3, steps=4, seed=1, mix=method))
    assert images.shape == (3, 1, 28, 28) and bool(torch.isfinite(images).all())
    rows = blend_weights(7, 9, 4)
    # fp32: the strip's ends are evaluated in other batches than the single items, and bf16's rounding
    # of a batch moves a trained model's pixels by a few hundredths
    strip = sample(model, SampleRequest(rows[0], n=4, steps=4, shared_noise=True, per_item_weights=rows, mix=method,
                                        precision="fp32"))
    ends = sample(model, SampleRequest(rows[0], n=1, steps=4, mix=LEGACY_MIX, precision="fp32")), \
        sample(model, SampleRequest(rows[-1], n=1, steps=4, mix=LEGACY_MIX, precision="fp32"))
    assert torch.allclose(strip[0], ends[0][0], atol=1e-5) and torch.allclose(strip[-1], ends[1][0], atol=1e-5)


def test_methods_differ_on_a_mix(model):
    images = {m: sample(model, SampleRequest(SNEAKER_BOOT, n=2, steps=4, seed=2, mix=m)) for m in MIX_METHODS}
    for a in MIX_METHODS:
        for b in MIX_METHODS:
            if a < b:
                assert not torch.allclose(images[a], images[b], atol=1e-4), (a, b)


def _unet_prediction(denoiser, x, t, embedding):
    with torch.no_grad():
        return denoiser.guided.model(x, t, {CLASS_KEY: embedding}).prediction


@pytest.mark.parametrize("t, guided", [(300, True), (700, False), (10, False)])
def test_compose_is_guidance_summed_over_the_picked_classes(model, t, guided):
    g = 1.5
    denoiser = model.denoiser
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    times = torch.tensor([t])
    table = denoiser.class_encoder.weight
    null = denoiser.guided.eval_unconditional_embedding[CLASS_KEY]
    c = {k: _unet_prediction(denoiser, x, times, table[k:k + 1]) for k in (0, 5, 7)}
    u = _unet_prediction(denoiser, x, times, null)
    weights = {0: 0.2, 5: 0.3, 7: 0.5}
    composed = u + (1 + g) * sum(w * (c[k] - u) for k, w in weights.items())
    cond = {"class_weights": torch.tensor([THREE])}
    with torch.no_grad():
        every = denoiser.with_guidance(g, (21, 400), "compose-all").eval()(x, times, cond).prediction
        default = denoiser.with_guidance(g, (21, 400), "compose").eval()(x, times, cond).prediction
        norm = denoiser.with_guidance(g, (21, 400), "norm").eval()(x, times, cond).prediction
    if guided:
        assert torch.allclose(every, composed, atol=1e-5) and torch.allclose(default, composed, atol=1e-5)
    else:  # outside the guidance interval: the plain weighted sum, or (compose) the norm mix's one call
        assert torch.allclose(every, sum(w * c[k] for k, w in weights.items()), atol=1e-5)
        assert torch.allclose(default, norm, atol=1e-6)


def test_recipe_stores_the_mix_and_the_checkpoint_by_name(tmp_path):
    request = SampleRequest(SNEAKER_BOOT, n=2, mix="norm").validate()
    data = recipe(request, "abc123", str(tmp_path / "private" / "model.pt"))
    assert data["mix"] == "norm" and data["checkpoint"] == "model.pt" and str(tmp_path) not in str(data)
    again, _ = request_from_recipe(data)
    assert again.mix == "norm" and again.class_weights == request.class_weights


def test_recipes_without_a_mix_keep_the_original_average(tmp_path):
    data = recipe(SampleRequest(SNEAKER_BOOT, n=2).validate(), "abc123", None)
    del data["mix"]
    assert request_from_recipe(data)[0].mix == "average"
    with pytest.raises(ValueError, match="mix"):
        request_from_recipe(data | {"mix": 3})
    with pytest.raises(SampleRequestError, match="mix method"):
        request_from_recipe(data | {"mix": "blend"})


def test_find_by_hash_prefers_the_stored_name(tmp_path, tiny_checkpoint):
    wanted = file_hash(tiny_checkpoint)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a-other.pt").write_bytes(b"not it")
    (folder / "b-copy.pt").write_bytes(tiny_checkpoint.read_bytes())
    assert find_by_hash(wanted, "tiny.pt", [tmp_path / "missing", folder]) == folder / "b-copy.pt"
    assert find_by_hash(wanted, None, [tiny_checkpoint, folder]) == tiny_checkpoint
    assert find_by_hash("0" * 16, "tiny.pt", [folder]) is None
