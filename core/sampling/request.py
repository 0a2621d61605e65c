"""The sample request: everything that determines the pixels (the recipe in every exported PNG),
checked against core.sampling.limits before any model runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch

from ..classes import DEFAULT_MIX, NUM_CLASSES, ClassSpecError, normalise_weights
from ..device import PRECISIONS
from ..model.mixing import check_method
from .limits import (
    AUTOGUIDANCE_RANGE, DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_INIT_STRENGTH, DEFAULT_ITEMS,
    DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_SWITCH_AT, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_ITEMS, MAX_SEED, MAX_STEPS,
    REQUEST_SAMPLERS, STUDENT, STUDENT_GUIDANCE_RANGE, step_range,
)

IMAGE_BYTES = 28 * 28  # an init image: 28x28 grey levels, row-major, 0 = black (the dataset's look)


class SampleRequestError(ValueError):
    """A generation parameter is out of range; the message is one line."""


@dataclass
class SampleRequest:
    """Everything that determines the pixels (the "recipe" stored in every exported PNG)."""

    class_weights: list[float]  # 10 weights summing to 1, or rows: one per item
    n: int = DEFAULT_ITEMS
    guidance: float | None = None  # g in (1+g)*cond - g*uncond; 0 = no guidance; None -> DEFAULT_GUIDANCE[sampler]
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None  # None -> DEFAULT_STEPS[sampler]
    seed: int = 0
    shared_noise: bool = False  # every item uses seed (not seed + i): blend strips
    per_item_weights: list[list[float]] | None = None  # overrides class_weights per item
    guidance_interval: tuple[int, int] | None = DEFAULT_GUIDANCE_INTERVAL  # guide at lo <= t <= hi; None = every t
    black_level: int = DEFAULT_BLACK_LEVEL  # final pixels <= this (of 255) become 0; 0 = raw output
    mix: str = DEFAULT_MIX  # how a multi-class row becomes the prediction (core.model.mixing)
    autoguidance: float = 0.0  # w: push away from the generator's guide model where guidance acts; 0 = CFG alone
    precision: str = "auto"  # "bf16" or "fp32" (recipes store which); "auto" is resolved for the device by the sampler
    # steering (core.sampling.steering); each is off by default, and off it leaves today's pixels
    variation_seed: int | None = None  # item i mixes in the noise of variation_seed + i ...
    variation_strength: float = 0.0  # ... this much, spherically: 0 = off (the seed's item), 1 = variation_seed's own
    init_image: bytes | None = None  # start from this picture (IMAGE_BYTES grey levels) noised to init_strength (SDEdit)
    init_strength: float = DEFAULT_INIT_STRENGTH  # t0 = strength * T: 0 = the picture itself, 1 = nearly fresh noise
    switch_to: list[float] | None = None  # 10 weights asked for from switch_at of the steps on (every item)
    switch_at: float = DEFAULT_SWITCH_AT  # fraction of the model calls made before the switch

    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS.get(self.sampler, DEFAULT_STEPS[DEFAULT_SAMPLER])

    def validate(self, max_items: int = MAX_ITEMS) -> "SampleRequest":
        try:
            check_method(self.mix)
        except ValueError as error:
            raise SampleRequestError(str(error)) from None
        if self.sampler not in REQUEST_SAMPLERS:
            raise SampleRequestError(f"sampler must be one of {', '.join(REQUEST_SAMPLERS)}, not {self.sampler!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= max_items:
            raise SampleRequestError(f"number of items must be 1-{max_items}, not {self.n!r}")
        if self.guidance is None:
            self.guidance = DEFAULT_GUIDANCE[self.sampler]
        steps, (fewest, most) = self.resolved_steps(), step_range(self.sampler)
        if isinstance(steps, bool) or not isinstance(steps, int) or not fewest <= steps <= most:
            what = " for the student" if self.sampler == STUDENT else ""
            raise SampleRequestError(f"steps must be {fewest}-{most}{what}, not {steps!r}")
        g = self.guidance
        if not isinstance(g, (int, float)) or not math.isfinite(g) or not GUIDANCE_RANGE[0] <= g <= GUIDANCE_RANGE[1]:
            raise SampleRequestError(f"guidance must be between {GUIDANCE_RANGE[0]:g} and {GUIDANCE_RANGE[1]:g}, not {g!r}")
        self.guidance_interval = _check_interval(self.guidance_interval)
        w = self.autoguidance
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not AUTOGUIDANCE_RANGE[0] <= w <= AUTOGUIDANCE_RANGE[1]:
            raise SampleRequestError(f"autoguidance must be between {AUTOGUIDANCE_RANGE[0]:g} and {AUTOGUIDANCE_RANGE[1]:g}, not {w!r}")
        if self.precision not in PRECISIONS:
            raise SampleRequestError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        level = self.black_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_BLACK_LEVEL:
            raise SampleRequestError(f"black level must be a whole number 0-{MAX_BLACK_LEVEL}, not {level!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SampleRequestError(f"seed must be a whole number 0-{MAX_SEED}, not {self.seed!r}")
        self._validate_steering()
        if self.sampler == STUDENT:
            self._validate_student()
        try:
            self.class_weights = _renormalise(self.class_weights)
            if self.per_item_weights is not None:
                if len(self.per_item_weights) != self.n:
                    raise SampleRequestError(f"per-item weights give {len(self.per_item_weights)} rows for {self.n} items")
                self.per_item_weights = [_renormalise(row) for row in self.per_item_weights]
        except ClassSpecError as error:
            raise SampleRequestError(str(error)) from None
        return self

    def _validate_steering(self) -> None:
        for name, what in (("variation_strength", "variation strength"), ("init_strength", "edit strength"),
                           ("switch_at", "switch point")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # nan fails too
                raise SampleRequestError(f"{what} must be between 0 and 1, not {value!r}")
            setattr(self, name, float(value))
        seed = self.variation_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
            raise SampleRequestError(f"variation seed must be a whole number 0-{MAX_SEED}, not {seed!r}")
        if self.variation_strength and seed is None:
            raise SampleRequestError("a variation strength needs a variation seed")
        if self.init_image is not None:
            if not isinstance(self.init_image, (bytes, bytearray)) or len(self.init_image) != IMAGE_BYTES:
                raise SampleRequestError(f"an init image must be 28x28 grey levels ({IMAGE_BYTES} bytes)")
            self.init_image = bytes(self.init_image)
        if self.switch_to is not None:
            try:
                self.switch_to = _renormalise(self.switch_to)
            except ClassSpecError as error:
                raise SampleRequestError(f"switch classes: {error}") from None

    def _validate_student(self) -> None:
        """What a student cannot do: it learned its teacher's default sampling (guidance 0-4 in the default
        interval, mixes composed), and autoguidance is not part of it."""
        if self.autoguidance:
            raise SampleRequestError("autoguidance is folded out of the student (it learned its teacher's guidance "
                                     "alone); set autoguidance to 0 or pick another sampler")
        lo, hi = STUDENT_GUIDANCE_RANGE
        if not lo <= self.guidance <= hi:
            raise SampleRequestError(f"the student learned guidance {lo:g}-{hi:g}, not {self.guidance!r}")
        if self.guidance_interval != DEFAULT_GUIDANCE_INTERVAL:
            raise SampleRequestError("the student learned guidance in the default interval "
                                     f"{DEFAULT_GUIDANCE_INTERVAL[0]}:{DEFAULT_GUIDANCE_INTERVAL[1]} only; leave the interval "
                                     "at its default or pick another sampler")
        if self.mix != DEFAULT_MIX:
            raise SampleRequestError(f"the student learned its teacher's {DEFAULT_MIX} mixes only; leave the mix at "
                                     f"{DEFAULT_MIX} or pick another sampler")

    def weight_matrix(self) -> torch.Tensor:
        """(n, 10) class weights."""
        rows = self.per_item_weights or [self.class_weights] * self.n
        return torch.tensor(rows, dtype=torch.float32)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["steps"] = self.resolved_steps()
        return data


def _check_interval(interval) -> tuple[int, int] | None:
    if interval is None:
        return None
    try:
        lo, hi = interval
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)):
            raise TypeError
    except (TypeError, ValueError):
        raise SampleRequestError(f"guidance interval must be two whole steps lo:hi, not {interval!r}") from None
    if not 0 <= lo <= hi < MAX_STEPS:
        raise SampleRequestError(f"guidance interval must satisfy 0 <= lo <= hi <= {MAX_STEPS - 1}, not {lo}:{hi}")
    return (lo, hi)


def parse_guidance_interval(text: str) -> tuple[int, int] | None:
    """'0:600' -> (0, 600); 'all' -> None (guide at every step). SampleRequestError otherwise."""
    text = text.strip().lower()
    if text in ("all", "full", "none"):
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        interval = (int(parts[0]), int(parts[1]))
    except ValueError:
        raise SampleRequestError(f"guidance interval must be lo:hi (e.g. 0:600) or 'all', not {text!r}") from None
    return _check_interval(interval)


def _renormalise(weights: Sequence[float]) -> list[float]:
    if len(weights) != NUM_CLASSES:
        raise ClassSpecError(f"expected {NUM_CLASSES} class weights, got {len(weights)}")
    try:
        values = {i: float(w) for i, w in enumerate(weights)}
    except (TypeError, ValueError):
        raise ClassSpecError("class weights must be numbers") from None
    return normalise_weights(values)


def check_guide(generator, autoguidance: float) -> None:
    """SampleRequestError (one line) when autoguidance is asked of a generator without a guide."""
    if autoguidance and getattr(generator, "guide", None) is None:
        raise SampleRequestError("autoguidance needs a guide model, and this generator has none "
                                 "(a NAME-guide.pt beside NAME.pt); set autoguidance to 0")


def prefer_student(request: SampleRequest, has_student: bool) -> SampleRequest:
    """The validated request of a caller that named no sampler (`request`, not yet validated): on the
    student where one is loaded and it can draw it (2 calls an item against DEFAULT_SAMPLER's 28),
    else on DEFAULT_SAMPLER, whose check then has the last word. What the student refuses
    (autoguidance, another guidance interval or mix, more than its steps, g over what it learned)
    keeps the teacher."""
    if has_student:
        try:
            return replace(request, sampler=STUDENT).validate()
        except SampleRequestError:
            pass
    return replace(request, sampler=DEFAULT_SAMPLER).validate()


def check_student(generator, sampler: str) -> None:
    """SampleRequestError (one line) when the student sampler is asked of a generator without a student."""
    if sampler == STUDENT and getattr(generator, "student", None) is None:
        raise SampleRequestError("the student sampler needs a student model, and this generator has none "
                                 "(a NAME-student.pt beside NAME.pt, or --student PATH); pick another sampler")


def blend_weights(first: int, second: int, count: int) -> list[list[float]]:
    """Rows stepping from 100% `first` to 100% `second` (the seed's sneaker + boot experiment)."""
    rows = []
    for i in range(count):
        share = i / (count - 1) if count > 1 else 0.0
        row = [0.0] * NUM_CLASSES
        row[first] += 1.0 - share
        row[second] += share
        rows.append(row)
    return rows
