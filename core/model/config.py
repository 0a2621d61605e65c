"""Typed configs. Every checkpoint carries them (as plain dicts), so a file alone rebuilds its model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def from_dict(cls, data: dict):
    """A config dataclass from a checkpoint's plain dict: unknown keys refused, lists back to tuples
    (the values' types and ranges are the caller's to check: core.checkpoint, core.evaluation.classifier)."""
    if not isinstance(data, dict):
        raise ValueError(f"config is a {type(data).__name__}, not a dict")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(map(str, unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


@dataclass
class ModelConfig:
    """U-Net + class encoder. The defaults are the U-Net of the default preset, `wide-snr` (and of `wide`)."""

    unshuffle: int = 2  # pixel-unshuffle stem: 28x28x1 -> 14x14x4, the U-Net runs at 14 and 7
    channels: tuple[int, ...] = (64, 128)  # widths per resolution level (14x14, 7x7 with unshuffle=2)
    blocks_per_level: int = 1  # residual blocks per level, down and up (each up block takes one skip)
    mid_attention: bool = True  # self-attention at the bottleneck (7x7 = 49 tokens: cheap)
    attention_levels: tuple[int, ...] = ()  # levels (0 = 14x14 with unshuffle=2) whose res blocks, down and up, are followed by self-attention
    time_embedding: str = "sinusoidal"  # "sinusoidal" (+MLP) or "learned" (nn.Embedding(steps, d), the seed's)
    time_dim: int = 128  # width of the time embedding
    class_dim: int = 64  # width of the nn.Embedding(10, d) class encoder
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0
    # A few-step student (core.training.distill) takes the guidance g as an input: an MLP of g's sinusoidal
    # features joins the time embedding. False for every trained generator (and for files without the key).
    guidance_input: bool = False


@dataclass
class DiffusionConfig:
    """Forward process, prediction target and guidance."""

    steps: int = 1000  # T of the linear beta schedule (beta 1e-4 -> 0.02)
    prediction: str = "v"  # "v" (VPredictor) or "noise" (NoisePredictor, the seed's)
    cfg_dropout: float = 0.1  # p of swapping the class embedding for the learned null one
    hybrid_lambda: float = 0.001  # weight of the VLB term that trains the variance head (Nichol & Dhariwal eq. 16)
    guidance: float = 2.0  # default CFG strength g: (1+g)*cond - g*uncond, 0 = no guidance
    # How the prediction's squared error is weighted over the noise levels t (core.model.diffusion.loss_weights):
    # "uniform" (plain MSE on the target), "min-snr" (Hang et al. 2023, capped at min_snr_gamma) or "edm"
    # (Karras et al. 2022: their log-normal noise levels and lambda(sigma), as weights on uniform t).
    loss_weighting: str = "uniform"
    min_snr_gamma: float = 5.0


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 200  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.05
    ema_decay: float = 0.999  # with warm-up: min(decay, (1 + step) / (10 + step))
    grad_clip: float = 1.0
    seed: int = 0
    limit: int | None = None  # train on the first N images (smoke runs)
    checkpoint_every: int = 500  # steps; a checkpoint is also written at each epoch end
    keep_checkpoints: int = 3
    log_every: int = 10  # steps between metrics.jsonl lines
    sample_grid_per_class: int = 8  # items per class row in each epoch's sample grid (at most 12)
    device: str = "auto"
    compile: bool | None = None  # torch.compile the step: None = where it pays (core.training.step.compile_plan)
    precision: str = "auto"  # "auto" (bf16 where the device computes it natively), "bf16" or "fp32"
    max_steps: int | None = None  # stop after this many steps in total (for budgets and tests)
    # Post-hoc EMA (Karras et al. 2024): the relative lengths (sigma_rel) of the power-function EMA
    # profiles tracked beside `ema`; every checkpoint also writes a snapshot of them, from which
    # core.training.posthoc_ema reconstructs an EMA of any length after training. () = off.
    posthoc_ema: tuple[float, ...] = ()


@dataclass
class DistillConfig:
    """A few-step student distilled from a teacher (core.training.distill), beside its TrainConfig (whose
    epochs are passes over the pairs)."""

    pairs: int = 20_000  # teacher pairs the student learns from (core.training.pairs)
    shard_size: int = 1024  # pairs per file in the run directory's pairs/
    perceptual: float = 0.1  # lambda_p: weight of the classifier-feature distance beside the pixel MSE
    grid_share: float = 0.5  # items trained at the student's own timesteps; the rest at t uniform in 1-999
    # items trained where the student's own sampler puts them: x_t of a grid's second call made by the
    # student's DDIM step from x_T (not the pair's path), so the second call learns to mend the first's error
    rollout_share: float = 0.0


# What a distillation trains with where fashion-train distill is not told: a student starts from a
# trained network, so a tenth of the from-scratch learning rate and a short warm-up.
DISTILL_TRAIN = TrainConfig(epochs=10, lr=2e-4, warmup_steps=100, ema_decay=0.999)


@dataclass
class Preset:
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


PRESETS: dict[str, Preset] = {
    # The default: the `wide` U-Net trained with min-SNR-5 loss weighting (Hang et al. 2023), which
    # after 4 epochs put its items at about half of `wide`'s Frechet distance (docs/experiments.md).
    "wide-snr": Preset(diffusion=DiffusionConfig(loss_weighting="min-snr")),
    # The 2026-11 shipped model's recipe (2.06M parameters, uniform MSE on v): v-prediction, sinusoidal time features,
    # a U-Net at 14x14 and 7x7 behind a pixel-unshuffle stem; the 128-channel 7x7 level, where the
    # global shape is decided, makes the trained model follow the asked-for class more closely than
    # `fast` (see docs/experiments.md).
    "wide": Preset(),
    # 96 channels at 7x7 (1.35M parameters): ~1.25x the training speed of `wide`.
    "fast": Preset(model=ModelConfig(channels=(64, 96))),
    # The original design: learned time embedding, noise prediction, full-resolution U-Net.
    "seed": Preset(
        model=ModelConfig(unshuffle=1, channels=(32, 64, 128), mid_attention=False, time_embedding="learned"),
        diffusion=DiffusionConfig(prediction="noise"),
    ),
    # More capacity at both levels (80 at 14x14, 160 at 7x7; 3.12M parameters, 0.72x the training
    # and 0.74x the sampling speed of `wide`): closer to the data at low guidance, not at g=2.
    "wider": Preset(model=ModelConfig(channels=(80, 160))),
    # Half the width of `wide` at both levels (0.60M parameters): a guide for autoguidance, trained
    # for a few epochs (the shipped guide: 5); its calls cost about 0.7x the default model's per item.
    "guide": Preset(model=ModelConfig(channels=(32, 64))),
    # The same half-width U-Net trained like `wide-snr` (min-SNR-5), for a guide whose errors are
    # of the kind a `wide-snr` model makes (Karras et al. 2024). An early checkpoint of the
    # generator's own run is the other way to get one (docs/experiments.md, the long run).
    "guide-snr": Preset(model=ModelConfig(channels=(32, 64)), diffusion=DiffusionConfig(loss_weighting="min-snr")),
    # A tiny model for tests and smoke runs.
    "tiny": Preset(model=ModelConfig(channels=(16, 32), time_dim=32, class_dim=16, groups=4, mid_attention=False)),
}


DEFAULT_PRESET = "wide-snr"


def as_dict(config) -> dict:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
