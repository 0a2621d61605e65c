"""The generate screen's first g, live mode, and random keys with resizes while it samples."""

from __future__ import annotations

import dataclasses
import random
import time

import torch

import tui.jobs
from core.classes import MIX_METHODS
from core.images import to_uint8
from core.sampling.limits import MAX_BLACK_LEVEL, MAX_ITEMS, MAX_STEPS, MIN_STEPS, SAMPLERS
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
from tui.widgets.controls import ROWS, ClassControls

TSHIRT = [1.0] + [0.0] * 9  # picked at start
BOOT = [0.0] * 9 + [1.0]


def footer_text(app) -> str:
    return " ".join(str(key) for key in app.screen.active_bindings) + " " + " ".join(
        active.binding.description for active in app.screen.active_bindings.values())


async def test_a_first_g_generates_the_class_picked_at_start(make_app, helpers):
    app = make_app(items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        assert "g generates" in helpers.status_text(app)
        await pilot.press("g")
        await helpers.generated(pilot)
        assert app.screen.result.request.class_weights[0] == 1.0 and app.screen.grid.count == 2


async def test_live_mode_regenerates_on_every_change_and_cancels_the_run_in_flight(make_app, trained, helpers,
                                                                                     monkeypatch):
    real_steps = tui.jobs.steps
    runs = []

    def slow_steps(generator, request, cancelled):  # 20 ms a step: a run is still in flight at the next key
        taken = []
        runs.append(taken)
        for step in real_steps(generator, request, cancelled):
            taken.append(step.index)
            time.sleep(0.02)
            yield step

    monkeypatch.setattr(tui.jobs, "steps", slow_steps)
    app = make_app(items=2, sampler="ddpm", steps=100)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert "Live: off" in footer_text(app)
        await pilot.press("v")
        assert screen.live and "Live: ON" in footer_text(app) and "Live: off" not in footer_text(app)
        assert screen.sampling is not None  # turning it on generates at once
        job = screen.job
        await pilot.press("right_square_bracket")  # a change while sampling: a new run replaces it
        assert screen.job == job + 1 and screen.sampling is not None
        await pilot.press("right_square_bracket", "s")  # guidance 3, then the next sampler (DDPM -> DPM++)
        assert screen.job == job + 3
        await helpers.generated(pilot)
        request = screen.result.request
        assert (request.guidance, request.sampler) == (3.0, "dpm")
        expected = sample(trained, SampleRequest(TSHIRT, n=2, guidance=3.0, sampler="dpm", steps=100, seed=0))
        assert torch.equal(screen.result.images, expected)
        assert all(len(run) < 100 for run in runs[:-1]) and len(runs[-1]) == 100  # only the last run finished

        await pilot.press("p")  # a palette only recolours: no new run
        assert screen.job == job + 3 and screen.sampling is None
        await pilot.press("v", "right_square_bracket")
        assert not screen.live and screen.job == job + 3 and screen.sampling is None  # off: only g generates


async def test_live_mode_keeps_an_unlocked_seed_and_a_blend_strip(make_app, helpers):
    app = make_app(items=3)
    async with app.run_test(size=(100, 30)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("down", "space", "l", "b")  # tshirt -> trouser strip, seed unlocked
        await helpers.generated(pilot)
        seed = screen.result.request.seed
        await pilot.press("v")
        await helpers.generated(pilot)
        await pilot.press("left_square_bracket")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.per_item_weights is not None and request.guidance == 1.5 and request.seed == seed


def check_controls(app) -> None:
    """Whatever was pressed, the app runs and its controls hold values a request can take."""
    assert app.is_running
    state = app.screen.state
    assert len(set(state.picked)) == len(state.picked) and set(state.shares) == set(state.picked)
    if state.picked:
        assert abs(sum(state.shares.values()) - 100) < 1e-6 and all(0 <= v <= 100 for v in state.shares.values())
    assert 0 <= state.guidance <= 20 and 1 <= state.items <= MAX_ITEMS and MIN_STEPS <= state.steps <= MAX_STEPS
    assert state.sampler in SAMPLERS and state.mix in MIX_METHODS and 0 <= state.black_level <= MAX_BLACK_LEVEL
    assert 0 <= app.screen.controls.cursor < len(ROWS)


def check_result(screen, generator) -> None:
    """A finished run's items are on the grid, and (when cheap to redo) they are its request's pixels."""
    result = screen.result
    if result is None or screen.sampling is not None:
        return
    assert screen.grid.pixels == to_uint8(result.images[:, 0]).numpy().tobytes()
    request = result.request
    if request.n * request.resolved_steps() <= 64:
        assert torch.equal(sample(generator, dataclasses.replace(request)), result.images)


async def move_to(pilot, row: tuple) -> None:
    controls = pilot.app.screen.controls
    await pilot.press(*["down"] * ((ROWS.index(row) - controls.cursor) % len(ROWS)))
    assert controls.row == row


async def test_hundreds_of_random_keys_and_resizes_while_sampling_leave_a_working_app(make_app, trained, helpers):
    keys = ["up", "down", "left", "right", "space", "plus", "minus", "g", "escape", "b", "z", "p", "x", "s", "r", "l",
            "n", "N", "i", "v", "tab", "shift+tab", "left_square_bracket", "right_square_bracket", "home", "end",
            "1", "5", "0", "enter", "backspace", "j", "k"]
    sizes = [(80, 24), (60, 20), (120, 40), (59, 19), (100, 30), (80, 24)]
    rng = random.Random(7)
    app = make_app(items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("v")  # live: most keys start or cancel a run
        for count in range(300):
            await pilot.press(rng.choice(keys))
            check_controls(app)
            if count % 25 == 0:
                await pilot.resize_terminal(*rng.choice(sizes))
                await pilot.pause()
                check_result(screen, trained)
        await pilot.resize_terminal(80, 24)

        # back to a known state with keys alone: live off, nothing typed, running or zoomed
        if screen.live:
            await pilot.press("v")
        for _ in range(3):  # a typed value, then a run, then the zoom: Esc drops one at a time
            await pilot.press("escape")
        await helpers.wait_until(pilot, lambda: screen.sampling is None, what="the last run to stop")
        assert not screen.live and not screen.grid.zoomed and screen.controls.typed is None
        for _ in range(2):
            if not isinstance(app.focused, ClassControls):
                await pilot.press("tab")
        assert isinstance(app.focused, ClassControls)
        for picked in list(screen.state.picked):  # unpick every class, then pick boot
            await move_to(pilot, ("class", picked))
            await pilot.press("space")
        await move_to(pilot, ("class", 9))
        await pilot.press("space")
        for row, value in (("items", "2"), ("steps", "4")):  # a quick run, whatever the keys chose
            await move_to(pilot, ("setting", row))
            await pilot.press(*value, "enter")
        state = screen.state
        assert state.picked == [9] and (state.items, state.steps) == (2, 4)
        await pilot.press("g")
        await helpers.generated(pilot)
        check_controls(app)
        # the request the controls show (every other setting is where the random keys left it)
        expected = SampleRequest(BOOT, n=2, guidance=state.guidance, guidance_interval=state.guidance_interval,
                                 black_level=state.black_level, sampler=state.sampler, steps=4, seed=state.seed,
                                 mix=state.mix, autoguidance=state.autoguidance)
        assert torch.equal(screen.result.images, sample(trained, expected))
        assert screen.grid.pixels == to_uint8(screen.result.images[:, 0]).numpy().tobytes()
