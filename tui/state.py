"""What the generate screen's controls hold, as plain data (no Textual, no torch).

Mixing: each picked class has a share in percent and the shares of picked classes always
sum to 100. Nudging or typing one share rescales the other picked classes to make room,
so what the user sees is always the mix the model gets.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from core.classes import DEFAULT_MIX, MIX_METHODS, NUM_CLASSES, SHORT_NAMES
from core.sampling.limits import (
    AUTOGUIDANCE_ON, AUTOGUIDED_GUIDANCE, DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL,
    DEFAULT_ITEMS, DEFAULT_SAMPLER, DEFAULT_STEPS, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_ITEMS, MAX_SEED, MAX_STEPS,
    MIN_STEPS, SAMPLERS,
)

SHARE_STEP = 5.0  # percent per +/- press
GUIDANCE_STEP = 0.5
ITEM_PRESETS = (1, 2, 4, 8, 16, 32, MAX_ITEMS)  # n / N step through these


class InputError(ValueError):
    """A value the user gave cannot be used; the message is one line and says what would work."""


@dataclass
class GenerateState:
    picked: list[int] = field(default_factory=list)  # classes in the order they were picked
    shares: dict[int, float] = field(default_factory=dict)  # class -> percent; picked classes sum to 100
    guidance: float = DEFAULT_GUIDANCE[DEFAULT_SAMPLER]  # g in (1+g)*cond - g*uncond; 0 = no guidance
    guidance_interval: tuple[int, int] | None = DEFAULT_GUIDANCE_INTERVAL  # None: every step (older recipes)
    black_level: int = DEFAULT_BLACK_LEVEL  # final pixels <= this (of 255) become black; 0 = raw output
    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS[DEFAULT_SAMPLER]
    seed: int = 0
    seed_locked: bool = True  # unlocked: every generation rolls a new seed
    items: int = DEFAULT_ITEMS
    palette: str = "grey"
    mix: str = DEFAULT_MIX  # how a multi-class mix becomes the prediction (core.model.mixing)
    autoguidance: float = 0.0  # w of the push away from the guide model; 0 = guidance alone

    # ------------------------------------------------------------ classes and shares
    def toggle(self, index: int) -> None:
        """Pick or unpick a class. A new class gets an equal share; the others shrink proportionally."""
        if index in self.picked:
            self.picked.remove(index)
            self.shares.pop(index, None)
            self._rescale(fixed=None)
            return
        self.picked.append(index)
        self.shares[index] = 100.0 / len(self.picked)
        self._rescale(fixed=index)

    def share(self, index: int) -> float:
        return self.shares.get(index, 0.0)

    def nudge(self, index: int, delta: float) -> None:
        if index not in self.picked:
            raise InputError(f"{SHORT_NAMES[index]} is not picked; press space to pick it first")
        self.set_share(index, min(100.0, max(0.0, self.share(index) + delta)))

    def set_share(self, index: int, percent: float) -> None:
        if index not in self.picked:
            raise InputError(f"{SHORT_NAMES[index]} is not picked; press space to pick it first")
        if not math.isfinite(percent) or not 0.0 <= percent <= 100.0:
            raise InputError(f"a share must be 0-100%, not {percent:g}")
        if len(self.picked) == 1 and percent < 100.0:
            if percent == 0.0:
                raise InputError("a ratio of 0 for every class: at least one picked class needs a share above 0%")
            raise InputError(f"{SHORT_NAMES[index]} is the only picked class, so it has 100%; pick another with space")
        self.shares[index] = percent
        self._rescale(fixed=index)

    def _rescale(self, fixed: int | None) -> None:
        """Scale the picked classes other than `fixed` so that all picked shares sum to 100."""
        room = 100.0 - self.shares[fixed] if fixed is not None else 100.0
        others = [c for c in self.picked if c != fixed]
        if not others:
            if fixed is not None:
                self.shares[fixed] = 100.0
            return
        total = sum(self.shares.get(c, 0.0) for c in others)
        for c in others:
            self.shares[c] = room * (self.shares.get(c, 0.0) / total if total > 0 else 1.0 / len(others))

    def class_weights(self) -> list[float]:
        """Ten weights summing to 1, as the sampler wants them."""
        if not self.picked:
            raise InputError("no class picked: move to a class with the arrows and press space")
        total = sum(self.share(c) for c in self.picked)
        if total <= 0:
            raise InputError("a ratio of 0 for every class: give at least one picked class a share above 0%")
        weights = [0.0] * NUM_CLASSES
        for c in self.picked:
            weights[c] = self.share(c) / total
        return weights

    def set_weights(self, weights: list[float]) -> None:
        """From a recipe: pick every class with a positive weight, largest first."""
        picked = [i for i, w in sorted(enumerate(weights), key=lambda item: -item[1]) if w > 0]
        total = sum(weights[i] for i in picked)
        self.picked = picked
        self.shares = {i: 100.0 * weights[i] / total for i in picked}

    def blend_pair(self) -> tuple[int, int]:
        if len(self.picked) != 2:
            raise InputError(f"a blend strip needs exactly two picked classes, not {len(self.picked)}")
        return self.picked[0], self.picked[1]

    def describe_mix(self) -> str:
        if not self.picked:
            return "no class picked"
        return " + ".join(f"{SHORT_NAMES[c]} {self.share(c):.0f}%" for c in self.picked)

    # ------------------------------------------------------------ settings
    def set_guidance(self, value: float) -> None:
        low, high = GUIDANCE_RANGE
        if not math.isfinite(value) or not low <= value <= high:
            raise InputError(f"guidance must be between {low:g} and {high:g} (0 = no guidance), not {value:g}")
        self.guidance = round(value, 3)

    def nudge_guidance(self, delta: float) -> None:
        low, high = GUIDANCE_RANGE
        self.set_guidance(min(high, max(low, round(self.guidance + delta, 3))))

    def toggle_guidance_scope(self) -> None:
        """Default interval -> every step (classic CFG) -> default; a recipe's own interval -> default."""
        default = tuple(self.guidance_interval or ()) == DEFAULT_GUIDANCE_INTERVAL
        self.guidance_interval = None if default else DEFAULT_GUIDANCE_INTERVAL

    def default_guidance(self) -> float:
        """Where g starts: lower with autoguidance, which pushes items too."""
        return AUTOGUIDED_GUIDANCE if self.autoguidance else DEFAULT_GUIDANCE[self.sampler]

    def toggle_autoguidance(self) -> None:
        """Off -> AUTOGUIDANCE_ON; on (at any weight, e.g. a recipe's) -> off. Guidance at its default
        follows (default_guidance); a value the user set stays."""
        guidance_default = self.guidance == self.default_guidance()
        self.autoguidance = 0.0 if self.autoguidance else AUTOGUIDANCE_ON
        if guidance_default:
            self.guidance = self.default_guidance()

    def toggle_sampler(self, direction: int = 1) -> None:
        """The next sampler (DPM-Solver++, DDIM, DDPM); a sampler's default steps and guidance follow
        it, values the user set stay."""
        steps_default = self.steps == DEFAULT_STEPS[self.sampler]
        guidance_default = self.guidance == self.default_guidance()
        self.sampler = SAMPLERS[(SAMPLERS.index(self.sampler) + direction) % len(SAMPLERS)]
        if steps_default:
            self.steps = DEFAULT_STEPS[self.sampler]
        if guidance_default:
            self.guidance = self.default_guidance()

    def cycle_mix(self, direction: int = 1) -> None:
        self.mix = MIX_METHODS[(MIX_METHODS.index(self.mix) + direction) % len(MIX_METHODS)]

    def set_steps(self, value: int) -> None:
        if not MIN_STEPS <= value <= MAX_STEPS:
            raise InputError(f"steps must be {MIN_STEPS}-{MAX_STEPS}, not {value}")
        self.steps = value

    def set_black_level(self, value: int) -> None:
        if not 0 <= value <= MAX_BLACK_LEVEL:
            raise InputError(f"black level must be a whole number 0-{MAX_BLACK_LEVEL} (0 = raw model output), not {value}")
        self.black_level = value

    def set_seed(self, value: int) -> None:
        if not 0 <= value <= MAX_SEED:
            raise InputError(f"seed must be a whole number 0-{MAX_SEED}, not {value}")
        self.seed = value

    def reroll_seed(self, rng: random.Random | None = None) -> None:
        self.seed = (rng or random).randint(0, 999_999)

    def set_items(self, value: int) -> None:
        if not 1 <= value <= MAX_ITEMS:
            raise InputError(f"number of items must be 1-{MAX_ITEMS}, not {value}")
        self.items = value

    def step_items(self, up: bool) -> None:
        if up:
            bigger = [n for n in ITEM_PRESETS if n > self.items]
            self.items = bigger[0] if bigger else MAX_ITEMS
        else:
            smaller = [n for n in ITEM_PRESETS if n < self.items]
            self.items = smaller[-1] if smaller else 1

    def request_fields(self) -> dict:
        """Keyword arguments for core.sampling.request.SampleRequest (the caller validates them)."""
        return {"class_weights": self.class_weights(), "n": self.items, "guidance": self.guidance,
                "guidance_interval": self.guidance_interval, "black_level": self.black_level, "sampler": self.sampler, "steps": self.steps, "seed": self.seed,
                "mix": self.mix, "autoguidance": self.autoguidance}

    def apply_request(self, request) -> None:
        """Mirror a SampleRequest (from a PNG recipe) in the controls; locks the seed."""
        if request.per_item_weights:
            first = max(range(NUM_CLASSES), key=lambda i: request.per_item_weights[0][i])
            last = max(range(NUM_CLASSES), key=lambda i: request.per_item_weights[-1][i])
            self.picked, self.shares = [first, last], {first: 50.0, last: 50.0}
            if first == last:
                self.picked, self.shares = [first], {first: 100.0}
        else:
            self.set_weights(request.class_weights)
        self.guidance = float(request.guidance)
        self.guidance_interval = request.guidance_interval
        self.black_level = request.black_level
        self.mix = request.mix
        self.autoguidance = request.autoguidance
        self.sampler = request.sampler
        self.steps = request.resolved_steps()
        self.seed = request.seed
        self.seed_locked = True
        self.items = request.n


def item_captions(request) -> list[str]:
    """Each item's caption: its classes and shares in a blend strip, else its seed."""
    if request.per_item_weights:
        captions = []
        for row in request.per_item_weights:
            parts = [f"{SHORT_NAMES[c]} {round(100 * w)}" for c, w in enumerate(row) if w > 0]
            captions.append(" · ".join(parts))
        return captions
    return [f"seed {request.seed if request.shared_noise else request.seed + i}" for i in range(request.n)]
