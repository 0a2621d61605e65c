"""The conditional U-Net: x_t (B,1,28,28), t (B,), a class embedding (B, class_dim) -> DiffusionOutput.

Every down block, the bottleneck and every up block sees cond = [time_emb ; class_emb]
(concatenated), applied as a per-channel scale and shift (FiLM) inside each residual block.
The class embedding comes from core.model.denoiser's class encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmultimodal.diffusion_labs.utils.common import DiffusionOutput

from .config import ModelConfig

CLASS_KEY = "class_emb"  # the conditional input CFGuidance hands the U-Net
GUIDANCE_KEY = "guidance"  # a student's conditional input: the guidance g of each item (B,)
# g * GUIDANCE_SCALE spreads the guidance a student learns, 0-4, over the range the time features
# are built for (steps 0-999), so neighbouring values of g get distinguishable features
GUIDANCE_SCALE = 250.0


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 whatever its input: under bf16 autocast the convolutions run in
    bf16, while the statistics, the FiLM scale and shift and the SiLU after them stay in fp32
    (more accurate, and on a bf16 CPU faster than the mixed-type kernel). A no-op in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float())


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


class GuidanceEmbedding(nn.Module):
    """Guidance g (B,) -> (B, dim): sinusoidal features of g * GUIDANCE_SCALE + a 2-layer MLP whose last
    layer starts at zero, so a student built from a teacher's weights starts as exactly the teacher's
    conditional model, whatever g it is given."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, guidance: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_features(guidance * GUIDANCE_SCALE, self.dim))


class ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM from cond, GN-SiLU-conv, residual (Ho et al. 2020 / Dhariwal & Nichol 2021)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = GroupNorm32(min(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * out_ch)  # -> (scale, shift) per channel
        self.norm2 = GroupNorm32(min(groups, out_ch), out_ch)
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
    """Multi-head self-attention over the H*W positions (at 7x7: 49 tokens; at 14x14: 196)."""

    def __init__(self, ch: int, groups: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(min(groups, ch), ch)
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


def level_attention(config: ModelConfig, level: int, width: int) -> nn.ModuleList:
    """One module per block of `level`: self-attention where config.attention_levels names the level
    (at 14x14 that is 196 tokens, so it costs about one convolution there), else a weightless Identity,
    which keeps the weight names of models without it unchanged."""
    make = (lambda: Attention(width, config.groups)) if level in config.attention_levels else nn.Identity
    return nn.ModuleList([make() for _ in range(config.blocks_per_level)])


class UNet(nn.Module):
    """x_t (B,1,28,28), t (B,), {CLASS_KEY: (B, class_dim)[, GUIDANCE_KEY: (B,)]} -> DiffusionOutput.

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
        # a student's guidance input joins the time embedding (its conditional_inputs carry GUIDANCE_KEY)
        self.guidance_embedding = GuidanceEmbedding(config.time_dim) if config.guidance_input else None
        u = config.unshuffle
        self.unshuffle = nn.PixelUnshuffle(u) if u > 1 else nn.Identity()
        self.stem = nn.Conv2d(u * u, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()  # per level, per block: Attention after it, or Identity (no weights)
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
            self.down_attn.append(level_attention(config, level, width))
            # stride-2 conv between levels (28->14->7); Identity after the last level
            self.downsample.append(nn.Conv2d(width, ch[level + 1], 3, stride=2, padding=1) if level < len(ch) - 1 else nn.Identity())

        self.mid1 = ResBlock(ch[-1], ch[-1], cond_dim, groups, drop)
        self.mid_attn = Attention(ch[-1], groups) if config.mid_attention else None
        self.mid2 = ResBlock(ch[-1], ch[-1], cond_dim, groups, drop)

        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            width = ch[level]
            blocks = nn.ModuleList()
            in_ch = width
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(in_ch + skip_ch.pop(), width, cond_dim, groups, drop))
                in_ch = width
            self.up.append(blocks)
            self.up_attn.append(level_attention(config, level, width))
            # nearest x2 then conv (7->14->28); Identity at the top level
            self.upsample.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, ch[level - 1], 3, padding=1))
                if level > 0 else nn.Identity()
            )

        self.head_norm = GroupNorm32(min(groups, ch[0]), ch[0])
        # 2 output maps (prediction, variance value), folded back to 28x28 by pixel-shuffle
        self.head = nn.Conv2d(ch[0], 2 * u * u, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.shuffle = nn.PixelShuffle(u) if u > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor, conditional_inputs: dict) -> DiffusionOutput:
        time = self.time(t)  # (B, time_dim)
        if self.guidance_embedding is not None:
            time = time + self.guidance_embedding(conditional_inputs[GUIDANCE_KEY])
        cond = F.silu(torch.cat([time, conditional_inputs[CLASS_KEY].to(x.dtype)], dim=1))  # (B, time+class)
        h = self.stem(self.unshuffle(x))  # (B, ch0, 28/u, 28/u)
        skips = []
        for blocks, attns, down in zip(self.down, self.down_attn, self.downsample):
            for block, attn in zip(blocks, attns):
                h = attn(block(h, cond))
                skips.append(h)
            h = down(h)
        h = self.mid1(h, cond)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, cond)
        for blocks, attns, up in zip(self.up, self.up_attn, self.upsample):
            for block, attn in zip(blocks, attns):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), cond))
            h = up(h)
        out = self.shuffle(self.head(F.silu(self.head_norm(h))))  # (B, 2, 28, 28)
        prediction, variance = out[:, :1], out[:, 1:]
        # variance_value interpolates log-variance between beta_tilde (0) and beta (1): eq. 15, Nichol & Dhariwal
        return DiffusionOutput(prediction=prediction, variance_value=torch.sigmoid(variance))
