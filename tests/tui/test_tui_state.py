"""The generate screen's state without Textual: shares always sum to 100, bad values leave it intact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.classes
import core.images
import core.sampling.limits as limits
import core.sampling.request
from tui.screens.setting_keys import PALETTE_NAMES
from tui.state import GenerateState, InputError


def test_the_panel_the_checks_and_the_help_agree_on_every_limit(capsys):
    from tui.cli import build_parser
    from tui.widgets.controls import HINTS

    state = GenerateState()
    for low, high, set_value, check, hint in (
            (limits.MIN_STEPS, limits.MAX_STEPS, state.set_steps, dict(steps=...), HINTS["steps"]),
            (1, limits.MAX_ITEMS, state.set_items, dict(n=...), HINTS["items"]),
            (0, limits.MAX_BLACK_LEVEL, state.set_black_level, dict(black_level=...), HINTS["black"])):
        assert f"{low}-{high}" in hint
        set_value(high)  # the panel takes the edge the sampler takes, and refuses one past it
        field = next(iter(check))
        core.sampling.request.SampleRequest([1.0] + [0.0] * 9, **{field: high}).validate()
        with pytest.raises(InputError):
            set_value(high + 1)
        with pytest.raises(core.sampling.request.SampleRequestError):
            core.sampling.request.SampleRequest([1.0] + [0.0] * 9, **{field: high + 1}).validate()
    assert "0-20" in HINTS["guidance"] and limits.GUIDANCE_RANGE == (0.0, 20.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    generate_help = " ".join(capsys.readouterr().out.split())
    assert f"number of items, 1-{limits.MAX_ITEMS}" in generate_help and f"0-{limits.MAX_BLACK_LEVEL}" in generate_help
    assert PALETTE_NAMES == core.images.PALETTES


def test_picking_splits_evenly_and_nudging_moves_five_points():
    state = GenerateState()
    state.toggle(7)
    assert state.share(7) == 100
    state.toggle(9)
    assert (state.share(7), state.share(9)) == (50, 50)
    state.nudge(7, 5)
    assert (state.share(7), state.share(9)) == (55, 45)
    weights = state.class_weights()
    assert weights[7] == pytest.approx(0.55) and weights[9] == pytest.approx(0.45) and sum(weights) == pytest.approx(1)


def test_zero_for_every_class_is_refused_and_state_kept():
    state = GenerateState()
    state.toggle(3)
    with pytest.raises(InputError, match="ratio of 0"):
        state.set_share(3, 0)
    assert state.share(3) == 100 and state.class_weights()[3] == 1.0


def test_no_class_and_out_of_range_values_are_refused():
    state = GenerateState()
    with pytest.raises(InputError, match="no class picked"):
        state.class_weights()
    for bad in (-0.5, 20.5, float("nan")):
        with pytest.raises(InputError, match="guidance"):
            state.set_guidance(bad)
    assert state.guidance == 1.75
    with pytest.raises(InputError):
        state.set_items(65)
    with pytest.raises(InputError):
        state.set_steps(1)
    assert (state.items, state.steps) == (16, 20)


def test_sampler_toggle_keeps_custom_steps_and_guidance_but_swaps_defaults():
    state = GenerateState()
    assert (state.sampler, state.steps, state.guidance) == ("dpm", 20, 1.75)
    state.toggle_sampler()
    assert (state.sampler, state.steps, state.guidance) == ("ddim", 50, 2.0)
    state.toggle_sampler()
    assert (state.sampler, state.steps, state.guidance) == ("ddpm", 250, 2.0)
    state.set_steps(30)
    state.set_guidance(3.0)
    state.toggle_sampler()
    assert (state.sampler, state.steps, state.guidance) == ("dpm", 30, 3.0)
    state.toggle_sampler(-1)
    assert state.sampler == "ddpm"


def test_the_student_joins_the_cycle_only_where_one_is_loaded_and_holds_what_it_learned():
    state = GenerateState()
    seen = [state.sampler]
    for _ in range(4):
        state.toggle_sampler()
        seen.append(state.sampler)
    assert seen == ["dpm", "ddim", "ddpm", "dpm", "ddim"]  # no student loaded: never the student
    state.student_loaded = True
    state.toggle_sampler(-1)
    state.set_steps(30)
    state.set_guidance(6.0)
    state.toggle_autoguidance()
    state.toggle_guidance_scope()
    state.cycle_mix()
    teacher = (state.autoguidance, state.guidance_interval, state.mix)
    state.toggle_sampler(-1)  # dpm -> the student, backwards
    assert (state.sampler, state.steps, state.guidance) == (limits.STUDENT, 2, 4.0)  # its default steps; g held to 0-4
    assert (state.autoguidance, state.guidance_interval, state.mix) == (0.0, limits.DEFAULT_GUIDANCE_INTERVAL, "compose")
    for refused in (state.toggle_autoguidance, state.toggle_guidance_scope, state.cycle_mix):
        with pytest.raises(InputError, match="teacher sampler"):
            refused()
    with pytest.raises(InputError, match="steps must be 1-4 for the student"):
        state.set_steps(5)
    state.set_steps(1)
    state.toggle_sampler()  # back to DPM-Solver++: the teacher's settings again, its default steps
    assert (state.sampler, state.steps, state.guidance) == ("dpm", 20, 4.0)
    assert (state.autoguidance, state.guidance_interval, state.mix) == teacher


def test_a_students_recipe_without_a_student_loaded_steps_on_to_the_teacher():
    state = GenerateState(sampler=limits.STUDENT, steps=3)
    state.toggle_sampler()
    assert (state.sampler, state.steps) == ("dpm", 20)
    state = GenerateState(sampler=limits.STUDENT, steps=3)
    state.toggle_sampler(-1)
    assert (state.sampler, state.steps) == ("ddpm", 250)


def test_cycle_mix_steps_through_every_method_both_ways():
    state = GenerateState()
    seen = [state.mix]
    for _ in range(len(core.classes.MIX_METHODS) - 1):
        state.cycle_mix()
        seen.append(state.mix)
    assert seen == list(core.classes.MIX_METHODS)
    state.cycle_mix()
    assert state.mix == core.classes.MIX_METHODS[0]
    state.cycle_mix(-1)
    assert state.mix == core.classes.MIX_METHODS[-1]


operations = st.lists(st.one_of(
    st.tuples(st.just("toggle"), st.integers(0, 9)),
    st.tuples(st.just("nudge"), st.integers(0, 9), st.sampled_from([-5.0, 5.0])),
    st.tuples(st.just("set"), st.integers(0, 9), st.floats(0, 100)),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_shares_of_picked_classes_always_sum_to_100(ops):
    state = GenerateState()
    for op in ops:
        try:
            if op[0] == "toggle":
                state.toggle(op[1])
            elif op[0] == "nudge":
                state.nudge(op[1], op[2])
            else:
                state.set_share(op[1], op[2])
        except InputError:
            pass
        assert set(state.shares) == set(state.picked)
        assert all(share >= -1e-9 for share in state.shares.values())
        if state.picked:
            assert sum(state.shares.values()) == pytest.approx(100.0)
            assert sum(state.class_weights()) == pytest.approx(1.0)


def test_apply_request_mirrors_a_recipe():
    request = core.sampling.request.SampleRequest([0, 0, 0, 0, 0, 0, 0, 0.7, 0, 0.3], n=9, guidance=3.5, sampler="ddpm",
                                          steps=20, seed=123, guidance_interval=None, black_level=0).validate()
    state = GenerateState(seed_locked=False)
    assert state.guidance_interval == (21, 400)
    state.apply_request(request)
    assert state.guidance_interval is None and state.request_fields()["guidance_interval"] is None
    assert state.black_level == 0 and state.request_fields()["black_level"] == 0
    assert state.picked == [7, 9]
    assert state.class_weights() == pytest.approx(request.class_weights)
    assert (state.items, state.guidance, state.sampler, state.steps, state.seed, state.seed_locked) == \
           (9, 3.5, "ddpm", 20, 123, True)


def test_black_level_takes_0_to_32_and_a_bad_value_changes_nothing():
    state = GenerateState()
    state.toggle(9)
    state.set_black_level(0)
    assert state.request_fields()["black_level"] == 0
    state.set_black_level(32)
    for bad in (-1, 33):
        with pytest.raises(InputError, match="black level must be a whole number 0-32"):
            state.set_black_level(bad)
    assert state.black_level == 32
    core.sampling.request.SampleRequest(**state.request_fields()).validate()  # what the row allows, the sampler takes


def test_guidance_row_says_when_a_recipe_guides_other_steps():
    from tui.widgets.controls import guidance_scope

    assert guidance_scope(limits.DEFAULT_GUIDANCE_INTERVAL) == ""
    assert guidance_scope(None) == " all"
    assert guidance_scope((100, 900)) == " 100-900"
    assert guidance_scope((0, 500)) == " 0-500"  # the default of earlier releases, kept by their PNG recipes


def test_describe_interval_names_the_guided_steps():
    assert limits.describe_interval(None) == "every step"
    assert limits.describe_interval((0, 500)) == "t <= 500"
    assert limits.describe_interval((21, 400)) == "21 <= t <= 400"


def test_toggle_guidance_scope_cycles_between_the_default_interval_and_every_step():
    state = GenerateState()
    state.toggle_guidance_scope()
    assert state.guidance_interval is None
    state.toggle_guidance_scope()
    assert state.guidance_interval == limits.DEFAULT_GUIDANCE_INTERVAL
    state.guidance_interval = (100, 900)  # a reproduced recipe's own interval goes back to the default
    state.toggle_guidance_scope()
    assert state.guidance_interval == limits.DEFAULT_GUIDANCE_INTERVAL


def test_autoguidance_toggle_moves_default_guidance_and_keeps_a_set_one():
    state = GenerateState()
    state.toggle(9)
    assert state.autoguidance == 0 and state.guidance == 1.75
    state.toggle_autoguidance()
    assert (state.autoguidance, state.guidance) == (limits.AUTOGUIDANCE_ON, limits.AUTOGUIDED_GUIDANCE)
    assert state.request_fields()["autoguidance"] == limits.AUTOGUIDANCE_ON
    state.toggle_sampler()  # DDIM: with autoguidance on, the default g stays the autoguided one
    assert (state.sampler, state.guidance) == ("ddim", limits.AUTOGUIDED_GUIDANCE)
    state.toggle_autoguidance()
    assert (state.autoguidance, state.guidance) == (0.0, 2.0)
    state.set_guidance(3.0)
    state.toggle_autoguidance()
    assert (state.autoguidance, state.guidance) == (limits.AUTOGUIDANCE_ON, 3.0)  # a value the user set stays
