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
    DEFAULT_INIT_STRENGTH, DEFAULT_SWITCH_AT, DEFAULT_VARIATION_STRENGTH,
    DEFAULT_ITEMS, DEFAULT_SAMPLER, DEFAULT_STEPS, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_ITEMS, MAX_SEED,
    REQUEST_SAMPLERS, STUDENT, STUDENT_GUIDANCE_RANGE, describe_interval, step_range,
)

SHARE_STEP = 5.0  # percent per +/- press
GUIDANCE_STEP = 0.5
ITEM_PRESETS = (1, 2, 4, 8, 16, 32, MAX_ITEMS)  # n / N step through these
# What the student refuses (core.sampling.request checks the same), as the keys that ask for it say it:
# it learned its teacher's guidance in the default interval, composed mixes, and no guide model.
STUDENT_REFUSES = {
    "autoguidance": "the student folds guidance in; autoguidance needs a teacher sampler (s)",
    "interval": f"the student learned {describe_interval(DEFAULT_GUIDANCE_INTERVAL)} only; i needs a teacher sampler (s)",
    "mix": "the student always composes; other mixes need a teacher sampler (s)",
}


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
    # steering (core.sampling.steering), each off until its key turns it on
    variation_seed: int | None = None  # set: the items are variations (w) of the one item `seed` draws
    variation_strength: float = DEFAULT_VARIATION_STRENGTH
    init_image: bytes | None = None  # set: the items are edits of this picture (E: an item, O: a file)
    init_strength: float = DEFAULT_INIT_STRENGTH
    init_label: str = ""  # where the picture came from, for the info line
    other_mix: tuple[list[int], dict[int, float]] | None = None  # the mix of a class switch the list is not editing
    switch_at: float = DEFAULT_SWITCH_AT
    editing_switch: bool = False  # the class list edits the "then" mix (t); other_mix holds the first
    # the student sampler (core.sampling.limits.STUDENT)
    student_loaded: bool = False  # the model has a student beside it: s reaches it
    teacher_settings: tuple[float, tuple[int, int] | None, str] | None = None  # (autoguidance, interval, mix) the student set aside

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
        """Ten weights summing to 1, as the sampler wants them (the mix the class list edits)."""
        return _weights(self.picked, self.shares)

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
        return _describe(self.picked, self.shares)

    # ------------------------------------------------------------ settings
    def guidance_range(self) -> tuple[float, float]:
        return STUDENT_GUIDANCE_RANGE if self.sampler == STUDENT else GUIDANCE_RANGE

    def set_guidance(self, value: float) -> None:
        low, high = self.guidance_range()
        if not math.isfinite(value) or not low <= value <= high:
            learned = "the student learned guidance" if self.sampler == STUDENT else "guidance must be"
            raise InputError(f"{learned} between {low:g} and {high:g} (0 = no guidance), not {value:g}")
        self.guidance = round(value, 3)

    def nudge_guidance(self, delta: float) -> None:
        low, high = self.guidance_range()
        self.set_guidance(min(high, max(low, round(self.guidance + delta, 3))))

    def teacher_only(self, what: str) -> None:
        """InputError (one line) where the student samples: `what` is one of STUDENT_REFUSES."""
        if self.sampler == STUDENT:
            raise InputError(STUDENT_REFUSES[what])

    def toggle_guidance_scope(self) -> None:
        """Default interval -> every step (classic CFG) -> default; a recipe's own interval -> default."""
        self.teacher_only("interval")
        default = tuple(self.guidance_interval or ()) == DEFAULT_GUIDANCE_INTERVAL
        self.guidance_interval = None if default else DEFAULT_GUIDANCE_INTERVAL

    def default_guidance(self) -> float:
        """Where g starts: lower with autoguidance, which pushes items too."""
        return AUTOGUIDED_GUIDANCE if self.autoguidance else DEFAULT_GUIDANCE[self.sampler]

    def toggle_autoguidance(self) -> None:
        """Off -> AUTOGUIDANCE_ON; on (at any weight, e.g. a recipe's) -> off. Guidance at its default
        follows (default_guidance); a value the user set stays."""
        self.teacher_only("autoguidance")
        guidance_default = self.guidance == self.default_guidance()
        self.autoguidance = 0.0 if self.autoguidance else AUTOGUIDANCE_ON
        if guidance_default:
            self.guidance = self.default_guidance()

    def toggle_sampler(self, direction: int = 1) -> None:
        """The next sampler: DPM-Solver++, DDIM, DDPM and, where a student is loaded, the student.
        Between the teacher's samplers their default steps and guidance follow the sampler and values
        the user set stay. The student's 1-4 steps are no teacher's count, so crossing to or from it
        starts at the new sampler's default steps, and g is held to what it learned; autoguidance,
        the interval and the mix, which it refuses, are set aside on the way in and come back on the
        way out. A student's recipe opened without a student steps on from the student's place."""
        position = REQUEST_SAMPLERS.index(self.sampler)
        for _ in REQUEST_SAMPLERS:
            position = (position + direction) % len(REQUEST_SAMPLERS)
            if REQUEST_SAMPLERS[position] != STUDENT or self.student_loaded:
                break
        self.use_sampler(REQUEST_SAMPLERS[position])

    def use_sampler(self, sampler: str) -> None:
        """Move to `sampler` as s does (toggle_sampler): the steps and guidance at their defaults follow
        it, and what the student refuses is set aside on the way in and back on the way out."""
        steps_default = self.steps == DEFAULT_STEPS[self.sampler]
        guidance_default = self.guidance == self.default_guidance()
        leaving, self.sampler = self.sampler, sampler
        if self.sampler == STUDENT:
            self.teacher_settings = (self.autoguidance, self.guidance_interval, self.mix)
            self.autoguidance, self.guidance_interval, self.mix = 0.0, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_MIX
        elif leaving == STUDENT and self.teacher_settings is not None:
            (self.autoguidance, self.guidance_interval, self.mix), self.teacher_settings = self.teacher_settings, None
        if steps_default or STUDENT in (leaving, self.sampler):
            self.steps = DEFAULT_STEPS[self.sampler]
        low, high = self.guidance_range()
        self.guidance = self.default_guidance() if guidance_default else min(high, max(low, self.guidance))

    def cycle_mix(self, direction: int = 1) -> None:
        self.teacher_only("mix")
        self.mix = MIX_METHODS[(MIX_METHODS.index(self.mix) + direction) % len(MIX_METHODS)]

    def set_steps(self, value: int) -> None:
        low, high = step_range(self.sampler)
        if not low <= value <= high:
            raise InputError(f"steps must be {low}-{high}{' for the student' if self.sampler == STUDENT else ''}, not {value}")
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
        """A new seed; while varying, a new variation seed (the parent item stays)."""
        if self.variation_seed is not None:
            self.variation_seed = (rng or random).randint(0, 999_999)
        else:
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
        first, then = self.first_and_then()
        fields = {"class_weights": first, "n": self.items, "guidance": self.guidance,
                  "guidance_interval": self.guidance_interval, "black_level": self.black_level, "sampler": self.sampler, "steps": self.steps, "seed": self.seed,
                  "mix": self.mix, "autoguidance": self.autoguidance}
        if self.variation_seed is not None:
            fields |= {"variation_seed": self.variation_seed, "variation_strength": self.variation_strength, "shared_noise": True}
        if self.init_image is not None:
            fields |= {"init_image": self.init_image, "init_strength": self.init_strength}
        if then is not None:
            fields |= {"switch_to": then, "switch_at": self.switch_at}
        return fields

    # ------------------------------------------------------------ steering
    def first_and_then(self) -> tuple[list[float], list[float] | None]:
        """The weights asked for first, and after the switch (None without one)."""
        edited = _weights(self.picked, self.shares, "the 'then' mix" if self.editing_switch else "")
        if self.other_mix is None:
            return edited, None
        other = _weights(*self.other_mix, "the first mix" if self.editing_switch else "the 'then' mix")
        return (other, edited) if self.editing_switch else (edited, other)

    def toggle_switch_editing(self) -> None:
        """The class list edits the other mix of a class switch, made as a copy of the first the first time."""
        if self.other_mix is None:
            self.other_mix = (list(self.picked), dict(self.shares))
        (self.picked, self.shares), self.other_mix = self.other_mix, (self.picked, self.shares)
        self.editing_switch = not self.editing_switch

    def clear_switch(self) -> None:
        if self.editing_switch:
            self.toggle_switch_editing()
        self.other_mix = None

    def set_fraction(self, name: str, value: float) -> None:
        """variation_strength, init_strength or switch_at: 0-1."""
        what = {"variation_strength": "variation strength", "init_strength": "edit strength", "switch_at": "switch point"}[name]
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise InputError(f"{what} must be between 0 and 1, not {value:g}")
        setattr(self, name, round(value, 3))

    def describe_steering(self, brief: bool = False) -> str:
        """The steering in force, for the info line ('' without any); brief leaves out where the
        variations and the edit start from (the seed row and the status line say it)."""
        parts = []
        if self.variation_seed is not None:
            parts.append(f"vary {self.variation_strength:.2f}" + ("" if brief else f" around seed {self.seed}"))
        if self.init_image is not None:
            parts.append(f"edit {self.init_strength:.2f}" + ("" if brief else f" from {self.init_label or 'a picture'}"))
        if self.other_mix is not None:
            then = _describe(self.picked, self.shares) if self.editing_switch else _describe(*self.other_mix)
            parts.append(f"then {'(editing) ' if self.editing_switch else ''}{then} from {self.switch_at:.0%}")
        return " · ".join(parts)

    def describe_first(self) -> str:
        """The mix asked for first (the one the class list edits, unless it edits a switch's)."""
        return _describe(*self.other_mix) if self.editing_switch else self.describe_mix()

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
        if not self.sampler == STUDENT == request.sampler:  # a student's own items (w) keep what it set aside
            self.teacher_settings = None
        self.sampler = request.sampler
        self.steps = request.resolved_steps()
        self.seed = request.seed
        self.seed_locked = True
        self.items = request.n
        self.variation_seed = request.variation_seed
        if request.variation_seed is not None:
            self.variation_strength = request.variation_strength
        self.init_image, self.init_label = request.init_image, "the recipe's picture" if request.init_image else ""
        self.init_strength = request.init_strength
        self.editing_switch, self.other_mix = False, None
        if request.switch_to is not None:
            picked = [i for i, w in sorted(enumerate(request.switch_to), key=lambda item: -item[1]) if w > 0]
            self.other_mix = (picked, {i: 100.0 * request.switch_to[i] for i in picked})
        self.switch_at = request.switch_at


def _weights(picked: list[int], shares: dict[int, float], which: str = "") -> list[float]:
    """Ten weights summing to 1 from picked classes and their shares."""
    where = f" in {which}" if which else ""
    if not picked:
        raise InputError(f"no class picked{where}: move to a class with the arrows and press space")
    total = sum(shares.get(c, 0.0) for c in picked)
    if total <= 0:
        raise InputError(f"a ratio of 0 for every class{where}: give at least one picked class a share above 0%")
    weights = [0.0] * NUM_CLASSES
    for c in picked:
        weights[c] = shares.get(c, 0.0) / total
    return weights


def _describe(picked: list[int], shares: dict[int, float]) -> str:
    return " + ".join(f"{SHORT_NAMES[c]} {shares.get(c, 0.0):.0f}%" for c in picked) if picked else "no class picked"


def item_captions(request) -> list[str]:
    """Each item's caption: its classes and shares in a blend strip, else its seed."""
    if request.per_item_weights:
        captions = []
        for row in request.per_item_weights:
            parts = [f"{SHORT_NAMES[c]} {round(100 * w)}" for c, w in enumerate(row) if w > 0]
            captions.append(" · ".join(parts))
        return captions
    if request.variation_seed is not None:
        return [f"vary {request.variation_seed + i}" for i in range(request.n)]
    return [f"seed {request.seed if request.shared_noise else request.seed + i}" for i in range(request.n)]
