"""The denoiser: the nn.Embedding class encoder and classifier-free guidance around the U-Net.

    Denoiser(x_t (B,1,28,28), t (B,), {"class_weights": (B,10)})
      class_emb = class_weights @ E            # (B, class_dim); a mix is built by core.model.mixing
      CFGuidance -> swaps class_emb for a learned null embedding with p during training,
                    at sampling time evaluates cond and null in one doubled batch
      UNet(x_t, t, class_emb) -> DiffusionOutput(prediction (B,1,28,28), variance_value (B,1,28,28) in [0,1])

A sampling view (with_guidance) adds the guidance interval, the mix method and autoguidance.
{"guidance": (B,)} beside the class weights gives each item its own g (a teacher drawing a student's
pairs, core.training.pairs). A student (ModelConfig.guidance_input, core.training.distill) takes g as
an input instead: one row per item and call, never CFG's doubled batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torchmultimodal.diffusion_labs.modules.adapters.cfguidance import CFGuidance
from torchmultimodal.diffusion_labs.utils.common import DiffusionOutput

from ..classes import LEGACY_MIX, NUM_CLASSES
from . import mixing
from .config import DiffusionConfig, ModelConfig
from .unet import CLASS_KEY, GUIDANCE_KEY, UNet

# How a student embeds a mix of classes: one condition per item (it has no per-class calls to
# compose), at the classes' own length. It learns what the teacher composes from that condition.
STUDENT_MIX = "norm"


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
    def guidance_input(self) -> bool:
        """A student: g is an input of the U-Net, not CFG's blend of two predictions."""
        return self.guided.model.config.guidance_input

    @property
    def guidance(self) -> float:
        return self.guided.guidance

    @guidance.setter
    def guidance(self, value: float) -> None:
        self.guided.guidance = float(value)

    guidance_interval: tuple[int, int] | None = None  # None: guide at every t (set per view by with_guidance)
    mix: str = LEGACY_MIX  # how a multi-class row becomes the prediction (core.model.mixing; set per view)
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
        per_item = conditional_inputs.get(GUIDANCE_KEY)  # (B,) g of each item, or None: the view's
        if self.guidance_input:
            return self._student(x, t, weights, per_item)
        if self.training:
            return self.guided(x, t, {CLASS_KEY: self.class_embedding(weights)})
        if self.guidance_interval is None:
            inside = torch.ones_like(t, dtype=torch.bool)
        else:
            lo, hi = self.guidance_interval
            inside = (t >= lo) & (t <= hi)  # (B,) samplers pass one t for the whole batch
        pairs = self._pairs(weights)
        if (self.guide_weight or per_item is not None) and bool(inside.any()):
            return self._rows_guided(x, t, weights, inside, pairs, per_item)
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

    def _student(self, x, t, weights, per_item) -> DiffusionOutput:
        """A student's prediction: one row per item, its g an input of the U-Net (the view's g when
        the items carry none)."""
        g = per_item if per_item is not None else torch.full((x.shape[0],), self.guidance, device=x.device)
        embedding = self.class_embedding(weights, STUDENT_MIX)
        return self.guided.model(x, t, {CLASS_KEY: embedding, GUIDANCE_KEY: g.float()})

    def _rows_guided(self, x, t, weights, inside, pairs, per_item=None) -> DiffusionOutput:
        """(1+g) c - g u, plus w (c - c_guide) with a guide (autoguidance, Karras et al. 2024), where
        `inside`; c elsewhere. c is the conditional prediction under the view's mix (the weighted sum
        of per-class predictions when composed), c_guide the guide's own under the same mix, u the
        null condition's. The conditional rows and the B null rows share one call. g is the view's,
        or each item's own (per_item, (B,))."""
        batch = x.shape[0]
        g = self.guided.guidance if per_item is None else per_item.float().view(-1, 1, 1, 1)
        xs, ts, embedding = self._rows(x, t, weights, pairs)
        rows = xs.shape[0]

        def fold(values):  # (rows, ...) -> (B, ...)
            return values if pairs is None else mixing.weighted_sum(values, pairs[0], pairs[2], batch)

        guide = bool(torch.as_tensor(g).ne(0).any()) and bool(inside.any())
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
