"""What the monitor's and the compare view's charts draw, as plain data (no Textual, no torch): the
settings a person changes with keys (smoothing, log or linear y, the x axis, the quality metric),
TensorBoard's debiased smoothing, and a run snapshot's curves on the chosen x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)  # what [ and ] step through (TensorBoard's slider: 0-0.999)
X_AXES = ("step", "images", "time")  # what a steps through: optimizer steps, training images seen, training time
QUALITY_METRICS = ("accuracy", "kid")  # what k steps through
X_LABELS = {"step": "step", "images": "images seen", "time": "training time"}

LOSS_RAW, LOSS_SMOOTH, QUALITY, RATE, CPU = 244, 45, 78, 214, 141  # xterm-256 colours: legible on 256-colour terminals
# one colour per compared run, in the order they are picked: distinct hues at similar brightness
RUN_COLOURS = (39, 208, 77, 199, 226, 51, 141, 196, 250, 130)


@dataclass
class ChartSettings:
    """The keys' state, shared by the monitor and the compare view."""

    smoothing: float = 0.6  # TensorBoard's weight: 0 = the raw values
    log_y: bool = True  # loss falls over decades; a linear axis shows the last ones flat
    x_axis: str = "step"
    quality: str = "accuracy"

    def smoother(self, more: bool) -> None:
        index = min(range(len(SMOOTHING_STEPS)), key=lambda i: abs(SMOOTHING_STEPS[i] - self.smoothing))
        index = max(0, min(len(SMOOTHING_STEPS) - 1, index + (1 if more else -1)))
        self.smoothing = SMOOTHING_STEPS[index]

    def next_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    def next_quality(self) -> None:
        self.quality = QUALITY_METRICS[(QUALITY_METRICS.index(self.quality) + 1) % len(QUALITY_METRICS)]

    def describe(self) -> str:
        smoothing = f"smoothing {self.smoothing:.2f}" if self.smoothing else "no smoothing"
        return f"{smoothing} · {'log' if self.log_y else 'linear'} y · x {X_LABELS[self.x_axis]}"

    def quality_label(self) -> str:
        return "accuracy %" if self.quality == "accuracy" else "KID"


@dataclass(frozen=True)
class Curve:
    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    colour: int  # xterm-256
    right: bool = False  # on the right-hand y axis


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average divided by 1 - weight^n, so the first
    values are not pulled towards the 0 the average starts from. Non-finite values pass through."""
    if weight <= 0:
        return list(values)
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return out


def thin(xs: Sequence[float], ys: Sequence[float], count: int) -> tuple[list[float], list[float]]:
    """At most `count` points: bucket means of x and y (finite pairs only), so a chart draws as many
    points as it has dot columns however long the run."""
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    n = len(pairs)
    if n <= count or count < 1:
        return [x for x, _ in pairs], [y for _, y in pairs]
    out_x, out_y = [], []
    for c in range(count):
        bucket = pairs[c * n // count: max(c * n // count + 1, (c + 1) * n // count)]
        out_x.append(sum(x for x, _ in bucket) / len(bucket))
        out_y.append(sum(y for _, y in bucket) / len(bucket))
    return out_x, out_y


def images_per_step(info: dict) -> int | None:
    """Training images per optimizer step (all ranks) from run.json, or None when it does not say."""
    batch = info.get("global_batch")
    if not isinstance(batch, int):
        config = info.get("train_config") or {}
        size, world = config.get("batch_size"), info.get("world_size", 1)
        batch = size * world if isinstance(size, int) and isinstance(world, int) else None
    return batch if batch and batch > 0 else None


def x_values(axis: str, steps: Sequence[int], elapsed: Sequence[float], per_step: int | None) -> tuple[float, ...]:
    """The x of each record on `axis`: its step, images seen (step x global batch; the step where
    run.json does not say) or training minutes (NaN where a record has no elapsed_sec)."""
    if axis == "images" and per_step:
        return tuple(float(step * per_step) for step in steps)
    if axis == "time":
        return tuple(seconds / 60 for seconds in elapsed)
    return tuple(float(step) for step in steps)


def quality_values(records: Sequence[dict], metric: str) -> tuple[float, ...]:
    key = "accuracy" if metric == "accuracy" else "kid"
    scale = 100.0 if metric == "accuracy" else 1.0
    return tuple(scale * record[key] if isinstance(record.get(key), (int, float)) else math.nan for record in records)


def loss_curves(snapshot, settings: ChartSettings, colour: int | None = None, label: str = "loss") -> list[Curve]:
    """A run's loss: raw (grey) and smoothed (bright) for the monitor, or only smoothed in `colour`
    (the compare view), on the settings' x axis."""
    xs = x_values(settings.x_axis, snapshot.steps, snapshot.elapsed, images_per_step(snapshot.info))
    smoothed = tuple(smooth(snapshot.loss, settings.smoothing))
    if colour is not None:
        return [Curve(label, xs, smoothed, colour)]
    curves = [Curve("loss", xs, snapshot.loss, LOSS_RAW)]
    if settings.smoothing:
        curves.append(Curve("smoothed", xs, smoothed, LOSS_SMOOTH))
    return curves


def quality_curve(snapshot, settings: ChartSettings, colour: int = QUALITY, label: str | None = None,
                  right: bool = False) -> Curve:
    """The quality probe's records of a run (accuracy in % or KID), smoothed, on the settings' x axis."""
    records = snapshot.quality
    xs = x_values(settings.x_axis, [r["step"] for r in records], [r.get("elapsed_sec", math.nan) for r in records],
                  images_per_step(snapshot.info))
    ys = tuple(smooth(quality_values(records, settings.quality), settings.smoothing))
    return Curve(label or settings.quality_label(), xs, ys, colour, right)


def zero_based_ticks(farthest: float, most: int = 5) -> tuple[list[float], list[str]]:
    """At most `most` (2 or more) round ticks from 0 to the first one at or past `farthest` (below 0
    for a negative one), labelled with the digits they need, lowest first: 0, 0.5, 1, 1.5, 2 for
    a steady 1.99, where plotext labels 1.9934, 1.9967, ..."""
    if farthest < 0:
        ticks, labels = zero_based_ticks(-farthest, most)
        return [-t + 0.0 for t in reversed(ticks)], [f"{-t + 0.0:g}" for t in reversed(ticks)]  # + 0.0: no "-0"
    if not (math.isfinite(farthest) and farthest > 0):
        farthest = 1.0
    most = max(2, most)
    magnitude = 10 ** math.floor(math.log10(farthest / (most - 1)))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude * (most - 1) >= farthest * (1 - 1e-9))
    ticks = [round(i * step, 10) for i in range(math.ceil(farthest / step - 1e-9) + 1)]
    return ticks, [f"{t:g}" for t in ticks]


def format_tick(value: float, axis: str) -> str:
    """An x tick: whole steps and images with k/M, training time as 12m or 1h05."""
    if axis == "time":
        if abs(value) < 1:
            return f"{value * 60:.0f}s"
        minutes = int(round(value))
        return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes}m"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"
