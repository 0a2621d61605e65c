"""Schedule values, model shapes, guidance and class mixing, with a tiny model."""

import pytest
import torch

from core.model.config import PRESETS, DiffusionConfig, ModelConfig
from core.model.diffusion import DiffusionObjective, make_predictor, make_schedule
from core.model.denoiser import Denoiser
from core.model.unet import UNet, sinusoidal_features

TINY = PRESETS["tiny"]


def one_hot(labels, n=10):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), n).float()


def test_linear_schedule_known_values():
    schedule = make_schedule(DiffusionConfig())
    assert schedule.steps == 1000
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    abar = schedule.alphas_cumprod
    assert abar[0].item() == pytest.approx(1 - 1e-4)
    assert abar[-1].item() == pytest.approx(4.04e-5, rel=0.05)  # x_T is almost pure noise
    assert torch.all(abar[1:] < abar[:-1])


def test_v_predictor_inverts_the_v_target():
    config = DiffusionConfig(prediction="v")
    schedule = make_schedule(config)
    x0, noise = torch.rand(4, 1, 28, 28) * 2 - 1, torch.randn(4, 1, 28, 28)
    t = torch.tensor([0, 10, 500, 999])
    xt = schedule.q_sample(x0, noise, t)
    objective = DiffusionObjective(Denoiser(TINY.model, config), config)
    v = objective.target(x0, noise, t)
    predictor = make_predictor(config, schedule)
    assert torch.allclose(predictor.predict_x0(v, xt, t), x0, atol=1e-4)
    assert torch.allclose(predictor.predict_noise(v, xt, t), noise, atol=1e-3)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_unet_shapes_and_variance_range(preset):
    p = PRESETS[preset]
    model = Denoiser(p.model, p.diffusion)
    out = model(torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999]), {"class_weights": one_hot([0, 5, 9])})
    assert out.prediction.shape == (3, 1, 28, 28)
    assert out.variance_value.shape == (3, 1, 28, 28)
    assert out.variance_value.min() >= 0 and out.variance_value.max() <= 1


def test_learned_and_sinusoidal_time_embeddings():
    assert sinusoidal_features(torch.tensor([0, 1, 999]), 32).shape == (3, 32)
    cfg = ModelConfig(channels=(16, 32), time_dim=32, class_dim=16, groups=4, time_embedding="learned")
    unet = UNet(cfg, steps=1000)
    assert unet.time.table.num_embeddings == 1000
    with pytest.raises(ValueError, match="time_embedding"):
        UNet(ModelConfig(time_embedding="fourier"), 1000)


def test_single_class_at_weight_one_equals_its_embedding():
    model = Denoiser(TINY.model, TINY.diffusion)
    embedding = model.class_embedding(one_hot([3, 7]))
    assert torch.equal(embedding, model.class_encoder.weight[[3, 7]])
    mix = torch.zeros(1, 10)
    mix[0, 7], mix[0, 9] = 0.7, 0.3
    expected = 0.7 * model.class_encoder.weight[7] + 0.3 * model.class_encoder.weight[9]
    assert torch.allclose(model.class_embedding(mix)[0], expected, atol=1e-6)


def _perturb_null(model):
    with torch.no_grad():  # a trained-looking null embedding and a non-zero head, so guidance matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def test_guidance_zero_equals_conditional_prediction_and_guidance_extrapolates():
    torch.manual_seed(0)
    model = Denoiser(TINY.model, TINY.diffusion).eval()
    _perturb_null(model)
    x, t, c = torch.randn(2, 1, 28, 28), torch.tensor([300, 700]), {"class_weights": one_hot([1, 8])}
    with torch.no_grad():
        model.guidance = 0.0
        unguided = model(x, t, c).prediction
        conditional = model.guided.model(x, t, {"class_emb": model.class_embedding(c["class_weights"])}).prediction
        null = model.guided.eval_unconditional_embedding["class_emb"].expand(2, -1)
        unconditional = model.guided.model(x, t, {"class_emb": null}).prediction
        model.guidance = 2.0
        guided = model(x, t, c).prediction
    assert torch.allclose(unguided, conditional, atol=1e-6)
    assert torch.allclose(guided, 3 * conditional - 2 * unconditional, atol=1e-5)
    assert not torch.allclose(guided, conditional, atol=1e-4)


def test_training_drops_the_condition_with_probability_p():
    config = DiffusionConfig(cfg_dropout=1.0)
    model = Denoiser(TINY.model, config).train()
    _perturb_null(model)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([100, 100])
    a = model(x, t, {"class_weights": one_hot([0, 0])}).prediction
    b = model(x, t, {"class_weights": one_hot([9, 9])}).prediction
    assert torch.allclose(a, b)  # p=1: the class never reaches the U-Net


@pytest.mark.parametrize("prediction", ["v", "noise"])
def test_tiny_model_loss_falls(prediction, fake_data_dir):
    from core.data import load_split

    torch.manual_seed(0)
    config = DiffusionConfig(prediction=prediction)
    model = Denoiser(TINY.model, config)
    objective = DiffusionObjective(model, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    split = load_split("train", fake_data_dir)
    x0, weights = split.as_float(), one_hot(split.labels)

    def mean_loss():
        with torch.no_grad():
            torch.manual_seed(123)  # same t and noise every time
            return sum(objective(x0, weights).item() for _ in range(4)) / 4

    before = mean_loss()
    for _ in range(40):
        loss = objective(x0, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_loss() < 0.8 * before
