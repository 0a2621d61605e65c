"""The denoiser: a conditional U-Net, the nn.Embedding class encoder, and CFG around them.

    Denoiser(x_t (B,1,28,28), t (B,), {"class_weights": (B,10)})
      class_emb = class_weights @ E            # (B, class_dim); a mix is built by core.mixing
      CFGuidance -> swaps class_emb for a learned null embedding with p during training,
                    at sampling time evaluates cond and null in one doubled batch
      UNet(x_t, t, class_emb) -> DiffusionOutput(prediction (B,1,28,28), variance_value (B,1,28,28) in [0,1])

Every down block, the bottleneck and every up block sees cond = [time_emb ; class_emb]
(concatenated), applied as a per-channel scale and shift (FiLM) inside each residual block.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmultimodal.diffusion_labs.modules.adapters.cfguidance import CFGuidance
from torchmultimodal.diffusion_labs.utils.common import DiffusionOutput

from . import mixing
from .classes import LEGACY_MIX, NUM_CLASSES
from .config import DiffusionConfig, ModelConfig

CLASS_KEY = "class_emb"


def sinusoidal_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps -> (B, dim) [sin | cos] features at geometric frequencies (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Step t -> (B, time_dim). "sinusoidal": fixed features + 2-layer MLP; "learned": nn.Embedding(steps, d)."""

    def __init__(self, kind: str, dim: int, steps: int):
        super().__init__()
        if kind not in ("sinusoidal", "learned"):
            raise ValueError(f"time_embedding must be 'sinusoidal' or 'learned', not {kind!r}")
        self.kind, self.dim = kind, dim
        if kind == "learned":
            self.table = nn.Embedding(steps, dim)
        else:
            self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "learned":
            return self.table(t.long())
        return self.mlp(sinusoidal_features(t, self.dim))


class ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM from cond, GN-SiLU-conv, residual (Ho et al. 2020 / Dhariwal & Nichol 2021)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * out_ch)  # -> (scale, shift) per channel
        self.norm2 = nn.GroupNorm(min(groups, out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)  # (B, out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions (used at 7x7: 49 tokens)."""

    def __init__(self, ch: int, groups: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, c/heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, c/heads)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """x_t (B,1,28,28), t (B,), {CLASS_KEY: (B, class_dim)} -> DiffusionOutput.

    With unshuffle=2 the 28x28 image is folded into 14x14x4 (pixel-unshuffle) so every conv
    runs at 14x14 or 7x7: ~4x fewer FLOPs than a full-resolution U-Net for the same widths.
    """

    def __init__(self, config: ModelConfig, steps: int):
        super().__init__()
        self.config = config
        ch, groups, drop = config.channels, config.groups, config.dropout
        if 28 % config.unshuffle or (28 // config.unshuffle) % (2 ** (len(ch) - 1)):
            raise ValueError("unshuffle and number of levels do not fit 28x28")
        cond_dim = config.time_dim + config.class_dim
        self.time = TimeEmbedding(config.time_embedding, config.time_dim, steps)
        u = config.unshuffle
        self.unshuffle = nn.PixelUnshuffle(u) if u > 1 else nn.Identity()
        self.stem = nn.Conv2d(u * u, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_ch = []
        for level, width in enumerate(ch):
            blocks = nn.ModuleList()
            in_ch = width
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(in_ch, width, cond_dim, groups, drop))
                skip_ch.append(width)
                in_ch = width
            self.down.append(blocks)
            # stride-2 conv between levels (28->14->7); Identity after the last level
            self.downsample.append(nn.Conv2d(width, ch[level + 1], 3, stride=2, padding=1) if level < len(ch) - 1 else nn.Identity())

        self.mid1 = ResBlock(ch[-1], ch[-1], cond_dim, groups, drop)
        self.mid_attn = Attention(ch[-1], groups) if config.mid_attention else None
        self.mid2 = ResBlock(ch[-1], ch[-1], cond_dim, groups, drop)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            width = ch[level]
            blocks = nn.ModuleList()
            in_ch = width
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(in_ch + skip_ch.pop(), width, cond_dim, groups, drop))
                in_ch = width
            self.up.append(blocks)
            # nearest x2 then conv (7->14->28); Identity at the top level
            self.upsample.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, ch[level - 1], 3, padding=1))
                if level > 0 else nn.Identity()
            )

        self.head_norm = nn.GroupNorm(min(groups, ch[0]), ch[0])
        # 2 output maps (prediction, variance value), folded back to 28x28 by pixel-shuffle
        self.head = nn.Conv2d(ch[0], 2 * u * u, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.shuffle = nn.PixelShuffle(u) if u > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor, conditional_inputs: dict) -> DiffusionOutput:
        cond = F.silu(torch.cat([self.time(t), conditional_inputs[CLASS_KEY].to(x.dtype)], dim=1))  # (B, time+class)
        h = self.stem(self.unshuffle(x))  # (B, ch0, 28/u, 28/u)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, cond)
                skips.append(h)
            h = down(h)
        h = self.mid1(h, cond)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, cond)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), cond)
            h = up(h)
        out = self.shuffle(self.head(F.silu(self.head_norm(h))))  # (B, 2, 28, 28)
        prediction, variance = out[:, :1], out[:, 1:]
        # variance_value interpolates log-variance between beta_tilde (0) and beta (1): eq. 15, Nichol & Dhariwal
        return DiffusionOutput(prediction=prediction, variance_value=torch.sigmoid(variance))


class Denoiser(nn.Module):
    """Class encoder + CFGuidance(UNet): the network that DDPModule/DDIModule wrap."""

    def __init__(self, model_config: ModelConfig, diffusion_config: DiffusionConfig):
        super().__init__()
        # the N(0, 1) init nn.Embedding would do, skipped for the shape-only "meta" model that checkpoint
        # checks build: normal_ on meta tensors imports torch._dynamo, over a second in a fresh process
        weight = torch.empty(NUM_CLASSES, model_config.class_dim)
        if weight.device.type != "meta":
            nn.init.normal_(weight)
        self.class_encoder = nn.Embedding(NUM_CLASSES, model_config.class_dim, _weight=weight)
        self.guided = CFGuidance(
            UNet(model_config, diffusion_config.steps),
            dim_cond={CLASS_KEY: model_config.class_dim},
            p=diffusion_config.cfg_dropout,
            guidance=diffusion_config.guidance,
            learn_null_emb=True,
        )

    @property
    def guidance(self) -> float:
        return self.guided.guidance

    @guidance.setter
    def guidance(self, value: float) -> None:
        self.guided.guidance = float(value)

    guidance_interval: tuple[int, int] | None = None  # None: guide at every t (set per view by with_guidance)
    mix: str = LEGACY_MIX  # how a multi-class row becomes the prediction (core.mixing; set per view)
    guide: "Denoiser | None" = None  # autoguidance's weaker model (a view of it; set per view)
    guide_weight: float = 0.0  # w in c + g (c - u) + w (c - c_guide); 0 = plain CFG

    def with_guidance(self, guidance: float, interval: tuple[int, int] | None = None, mix: str = LEGACY_MIX,
                      guide: "Denoiser | None" = None, guide_weight: float = 0.0) -> "Denoiser":
        """A view that shares every parameter and buffer but has its own guidance and mix method, so
        concurrent samplers with different settings never race on shared state (CFGuidance keeps g
        as an attribute).

        interval=(lo, hi): guide only at steps lo <= t <= hi and run the plain conditional model
        elsewhere (guidance in a limited interval, Kynkaenniemi et al. 2024): guidance at the
        noisiest steps mostly collapses the variety of shapes, not the class they read as.

        guide, guide_weight: autoguidance (Karras et al. 2024) beside CFG at the guided steps: the
        push away from a weaker model's conditional prediction, `guide` (same prediction target and
        schedule), under the same mix. guide_weight 0 leaves the view exactly the CFG one."""
        view = copy.copy(self)
        view._modules = dict(self._modules)
        view._modules["guided"] = copy.copy(self.guided)  # shares its _modules/_parameters dicts
        view._modules["guided"].guidance = float(guidance)
        unguided = copy.copy(self.guided)
        unguided.guidance = 0.0
        view.__dict__["_unguided"] = unguided  # not a registered submodule: state_dict is unchanged
        view.__dict__["guidance_interval"] = None if interval is None else (int(interval[0]), int(interval[1]))
        view.__dict__["mix"] = mixing.check_method(mix)
        weight = float(guide_weight) if guide is not None else 0.0
        # not registered submodules either: the guide's weights stay out of this model's state_dict
        view.__dict__["guide"] = guide.with_guidance(0.0, None, mix) if weight else None
        view.__dict__["guide_weight"] = weight
        return view

    def class_embedding(self, class_weights: torch.Tensor, method: str = LEGACY_MIX) -> torch.Tensor:
        """(B, 10) weights summing to 1 -> (B, class_dim); one-hot gives exactly that class's row."""
        return mixing.embed(class_weights, self.class_encoder.weight, method)

    def forward(self, x: torch.Tensor, t: torch.Tensor, conditional_inputs: dict) -> DiffusionOutput:
        weights = conditional_inputs["class_weights"]  # (B, 10)
        if self.training:
            return self.guided(x, t, {CLASS_KEY: self.class_embedding(weights)})
        if self.guidance_interval is None:
            inside = torch.ones_like(t, dtype=torch.bool)
        else:
            lo, hi = self.guidance_interval
            inside = (t >= lo) & (t <= hi)  # (B,) samplers pass one t for the whole batch
        pairs = self._pairs(weights)
        if self.guide_weight and bool(inside.any()):
            return self._rows_guided(x, t, weights, inside, pairs)
        if pairs is None:
            return self._embedded(x, t, weights, inside, self.mix)
        if self.mix == "compose-all" or bool(inside.all()):
            return self._rows_guided(x, t, weights, inside, pairs)
        if not bool(inside.any()):  # compose's unguided steps: the norm mix's single call looks the same
            return self._embedded(x, t, weights, inside, "norm")
        return _where(inside, self._rows_guided(x, t, weights, inside, pairs), self._embedded(x, t, weights, inside, "norm"))

    def _pairs(self, weights):
        """(item, class, weight) triples (P,) when this view composes this batch's mix, else None."""
        if self.mix in ("compose", "compose-all") and not bool(mixing.single_class(weights).all()):
            return mixing.composed_pairs(weights)
        return None

    def _rows(self, x, t, weights, pairs):
        """The rows one call evaluates for the conditional prediction: one per picked (item, class)
        pair when composed (P rows), else one mixed condition per item (B rows)."""
        if pairs is None:
            return x, t, self.class_embedding(weights, self.mix)
        items, classes, _ = pairs
        return x[items], t[items], self.class_encoder.weight[classes]

    def _embedded(self, x, t, weights, inside, method: str) -> DiffusionOutput:
        """CFG on one mixed condition per item: (1+g) model(x, e) - g model(x, null) where guided."""
        embedding = self.class_embedding(weights, method)  # (B, class_dim)
        if bool(inside.all()):
            return self.guided(x, t, {CLASS_KEY: embedding})
        plain = self._unguided(x, t, {CLASS_KEY: embedding})
        if not bool(inside.any()):
            return plain
        return _where(inside, self.guided(x, t, {CLASS_KEY: embedding}), plain)  # mixed t: per item

    def _rows_guided(self, x, t, weights, inside, pairs) -> DiffusionOutput:
        """(1+g) c - g u, plus w (c - c_guide) with a guide (autoguidance, Karras et al. 2024), where
        `inside`; c elsewhere. c is the conditional prediction under the view's mix (the weighted sum
        of per-class predictions when composed), c_guide the guide's own under the same mix, u the
        null condition's. The conditional rows and the B null rows share one call."""
        batch, g = x.shape[0], self.guided.guidance
        xs, ts, embedding = self._rows(x, t, weights, pairs)
        rows = xs.shape[0]

        def fold(values):  # (rows, ...) -> (B, ...)
            return values if pairs is None else mixing.weighted_sum(values, pairs[0], pairs[2], batch)

        guide = g != 0 and bool(inside.any())
        if guide:
            null = self.guided.eval_unconditional_embedding[CLASS_KEY]  # (1, class_dim)
            embedding = torch.cat([embedding, null.expand(batch, -1)])
            xs, ts = torch.cat([xs, x]), torch.cat([ts, t])
        out = self.guided.model(xs, ts, {CLASS_KEY: embedding})
        prediction = fold(out.prediction[:rows])  # (B, 1, 28, 28)
        variance = None if out.variance_value is None else fold(out.variance_value[:rows])
        guided = (1 + g) * prediction - g * out.prediction[rows:] if guide else prediction
        if self.guide_weight:
            gx, gt, guide_embedding = self.guide._rows(x, t, weights, pairs)
            weak = fold(self.guide.guided.model(gx, gt, {CLASS_KEY: guide_embedding}).prediction)
            guided = guided + self.guide_weight * (prediction - weak.to(prediction.dtype))
        if guide or self.guide_weight:
            prediction = torch.where(inside[:, None, None, None], guided, prediction)
        return DiffusionOutput(prediction=prediction, variance_value=variance)


def _where(keep: torch.Tensor, a: DiffusionOutput, b: DiffusionOutput) -> DiffusionOutput:
    """Per item: a where keep (B,), else b."""
    mask = keep[:, None, None, None]
    variance = None if b.variance_value is None else torch.where(mask, a.variance_value, b.variance_value)
    return DiffusionOutput(prediction=torch.where(mask, a.prediction, b.prediction), variance_value=variance)
