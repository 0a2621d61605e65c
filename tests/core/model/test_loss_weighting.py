"""The loss weightings over noise levels and self-attention at chosen U-Net levels (tiny models)."""

import pytest
import torch

from core.checkpoint import CheckpointError, check_weights, config_dicts
from core.model.config import PRESETS, DiffusionConfig, ModelConfig
from core.model.denoiser import Denoiser
from core.model.diffusion import DiffusionObjective, loss_weights, make_schedule
from core.model.unet import Attention

TINY = PRESETS["tiny"]


def snr_of(config):
    abar = make_schedule(config).alphas_cumprod.double()
    return abar / (1 - abar)


def test_uniform_has_no_weights_and_unknown_names_are_refused():
    assert loss_weights(DiffusionConfig(), make_schedule(DiffusionConfig())) is None
    with pytest.raises(ValueError, match="loss_weighting must be one of"):
        DiffusionObjective(Denoiser(TINY.model, DiffusionConfig()), DiffusionConfig(loss_weighting="p2"))
    with pytest.raises(ValueError, match="min_snr_gamma"):
        loss_weights(DiffusionConfig(loss_weighting="min-snr", min_snr_gamma=0), make_schedule(DiffusionConfig()))


@pytest.mark.parametrize("prediction", ["v", "noise"])
def test_min_snr_is_the_capped_snr_over_the_targets_factor(prediction):
    config = DiffusionConfig(loss_weighting="min-snr", min_snr_gamma=5.0, prediction=prediction)
    weights = loss_weights(config, make_schedule(config)).double()
    snr = snr_of(config)
    expected = snr.clamp(max=5.0) / (snr + 1 if prediction == "v" else snr)
    assert weights.shape == (1000,)
    assert weights.mean().item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(weights, expected / expected.mean(), rtol=1e-5)
    if prediction == "noise":  # below the cap every step weighs the same; above it weights fall as 5/SNR
        assert weights[-1].item() == pytest.approx(weights.max().item())
        assert weights[0] < 0.01 * weights.max()


def test_edm_weights_follow_the_log_normal_and_lambda():
    config = DiffusionConfig(loss_weighting="edm")
    weights = loss_weights(config, make_schedule(config)).double()
    sigma = snr_of(config).rsqrt()
    assert weights.mean().item() == pytest.approx(1.0, rel=1e-5)
    peak = sigma[weights.argmax()].item()
    assert 0.02 < peak < 0.3  # log-normal(-1.2, 1.2) times lambda(sigma) / (SNR + 1) peaks at low noise
    assert weights[-1] < 1e-3 * weights.max()  # sigma ~ 157 lies 5 standard deviations out
    # between neighbouring steps the weight is density x lambda / (SNR + 1): check one ratio by hand
    i, j = 300, 301
    log_s = sigma.log()
    density = lambda k: torch.exp(-((log_s[k] + 1.2) ** 2) / (2 * 1.2**2))
    share = lambda k: density(k) * (log_s[k + 1] - log_s[k - 1]) / 2
    per_v = lambda k: (sigma[k] ** 2 + 0.25) / (sigma[k] ** 2 * 0.25) / (1 / sigma[k] ** 2 + 1)
    assert (weights[i] / weights[j]).item() == pytest.approx((share(i) * per_v(i) / (share(j) * per_v(j))).item(), rel=2e-3)


class FixedDraw(torch.nn.Module):
    """Stands in for RandomDiffusionSteps: always the same t, noise and x_t."""

    def __init__(self, draw: dict):
        super().__init__()
        self.draw = draw

    def forward(self, batch: dict) -> dict:
        return self.draw


@pytest.mark.parametrize("kind", ["min-snr", "edm"])
def test_weighted_objective_is_the_weighted_mse_plus_the_same_vlb(kind):
    """The objective's loss at a fixed draw is mean(w(t) (prediction - target)^2) + lambda VLB."""
    base, weighted_config = DiffusionConfig(), DiffusionConfig(loss_weighting=kind)
    torch.manual_seed(0)
    denoiser = Denoiser(TINY.model, base)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the zero-initialised output head
    plain, weighted = DiffusionObjective(denoiser, base), DiffusionObjective(denoiser, weighted_config)
    x0 = torch.rand(6, 1, 28, 28) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.arange(6), 10).float()
    t = torch.tensor([0, 5, 100, 300, 600, 999])
    noise = torch.randn_like(x0)
    draw = {"t": t, "noise": noise, "xt": plain.schedule.q_sample(x0, noise, t), "x": x0}
    for objective in (plain, weighted):
        objective.noiser = FixedDraw(draw)
    denoiser.train(False)  # no class drop-out: both objectives see the same prediction
    out = plain.ddpm(draw["xt"], t, {"class_weights": labels})
    error = (out.prediction.float() - plain.target(x0, noise, t)) ** 2  # (6,1,28,28)
    vlb = plain.loss.vlb_loss(out.mean.detach().float(), out.log_variance.float(), x0, draw["xt"], t)
    w = loss_weights(weighted_config, plain.schedule)[t][:, None, None, None]
    with torch.no_grad():
        assert plain(x0, labels).item() == pytest.approx((error.mean() + 0.001 * vlb).item(), rel=1e-5)
        assert weighted(x0, labels).item() == pytest.approx(((w * error).mean() + 0.001 * vlb).item(), rel=1e-5)
        assert weighted(x0, labels).item() != pytest.approx(plain(x0, labels).item(), rel=1e-3)


def test_attention_at_a_level_follows_each_of_its_blocks():
    config = ModelConfig(channels=(16, 32), time_dim=32, class_dim=16, groups=4, mid_attention=False,
                         blocks_per_level=2, attention_levels=(0,))
    model = Denoiser(config, DiffusionConfig())
    attentions = [name for name, m in model.named_modules() if isinstance(m, Attention)]
    assert len(attentions) == 4  # two blocks down and two up at level 0, none at level 1
    assert all(".down_attn.0." in name or ".up_attn.1." in name for name in attentions)  # up lists run 1, 0
    out = model(torch.randn(2, 1, 28, 28), torch.tensor([3, 700]), {"class_weights": torch.eye(10)[:2]})
    assert out.prediction.shape == (2, 1, 28, 28)


def test_models_without_attention_levels_keep_their_weight_names():
    names = set(Denoiser(PRESETS["wide"].model, DiffusionConfig()).state_dict())
    assert not any("down_attn" in name or "up_attn" in name for name in names)
    with_level = set(Denoiser(ModelConfig(attention_levels=(0,)), DiffusionConfig()).state_dict())
    assert names < with_level and any(".down_attn.0.0.qkv" in name for name in with_level)


@pytest.mark.parametrize("levels", [[2], [-1], [True], ["0"]])
def test_a_checkpoint_naming_a_missing_level_is_refused(levels):
    data = config_dicts(ModelConfig(**{**TINY.model.__dict__, "attention_levels": ()}), DiffusionConfig())
    data["model_config"]["attention_levels"] = levels
    data["ema"] = Denoiser(TINY.model, DiffusionConfig()).state_dict()
    with pytest.raises(CheckpointError, match="attention_levels"):
        check_weights(data, "ema")
