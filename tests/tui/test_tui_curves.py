"""The charts' data: TensorBoard's debiased smoothing, thinning, x axes, the settings the keys step."""

from __future__ import annotations

import math

import pytest

from tui.curves import ChartSettings, X_AXES, format_tick, images_per_step, smooth, thin, x_values


def test_smoothing_is_debiased_so_the_start_is_not_pulled_towards_zero():
    assert smooth([5.0, 5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0, 5.0])  # a constant stays itself
    out = smooth([1.0, 3.0], 0.5)
    assert out[0] == pytest.approx(1.0)  # the first point is the first value
    assert out[1] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)  # (w(1-w) a + (1-w) b) / (1 - w^2)
    assert smooth([1.0, 2.0], 0.0) == [1.0, 2.0]
    nan = smooth([1.0, math.nan, 1.0], 0.6)
    assert math.isnan(nan[1]) and nan[2] == pytest.approx(1.0)  # non-finite values pass through, unweighted


def test_thin_keeps_at_most_count_bucket_means():
    xs, ys = thin(list(range(1000)), [float(v) for v in range(1000)], 10)
    assert len(xs) == len(ys) == 10 and xs[0] == pytest.approx(49.5) and ys[-1] == pytest.approx(949.5)
    assert thin([1, 2, math.nan], [1.0, math.inf, 3.0], 10) == ([1], [1.0])


def test_x_axes_by_step_images_and_training_time():
    info = {"global_batch": 128}
    assert images_per_step(info) == 128
    assert images_per_step({"train_config": {"batch_size": 16}, "world_size": 2}) == 32 and images_per_step({}) is None
    assert x_values("images", [1, 2], [60.0, 120.0], 128) == (128.0, 256.0)
    assert x_values("time", [1, 2], [60.0, 120.0], 128) == (1.0, 2.0)  # minutes
    assert x_values("images", [1, 2], [60.0, 120.0], None) == (1.0, 2.0)  # run.json does not say: by step
    assert format_tick(1500, "images") == "1.5k" and format_tick(2_500_000, "step") == "2.5M"
    assert format_tick(75, "time") == "1h15" and format_tick(12.4, "time") == "12m" and format_tick(-0.5, "time") == "-30s"


def test_settings_step_and_describe_themselves():
    settings = ChartSettings()
    settings.smoother(False)
    settings.smoother(False)
    assert settings.smoothing == 0.0 and "no smoothing" in settings.describe()
    for _ in range(10):
        settings.smoother(True)
    assert settings.smoothing == 0.99
    seen = [settings.x_axis]
    for _ in X_AXES:
        settings.next_axis()
        seen.append(settings.x_axis)
    assert seen == ["step", "images", "time", "step"] and "x step" in settings.describe()
    settings.next_quality()
    assert settings.quality_label() == "KID"
