"""The generate screen's first g, live mode, and random keys with resizes while it samples."""

from __future__ import annotations

import random
import time

import torch

import tui.jobs
from core.checkpoint import load_generator
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample


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


async def test_live_mode_regenerates_on_every_change_and_cancels_the_run_in_flight(make_app, tiny_checkpoint, helpers,
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
        expected = sample(load_generator(tiny_checkpoint), SampleRequest(
            request.class_weights, n=2, guidance=3.0, sampler="dpm", steps=100, seed=request.seed))
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


async def test_hundreds_of_random_keys_and_resizes_while_sampling_leave_a_working_app(make_app, helpers):
    keys = ["up", "down", "left", "right", "space", "plus", "minus", "g", "escape", "b", "z", "p", "x", "s", "r", "l",
            "n", "N", "i", "v", "tab", "shift+tab", "left_square_bracket", "right_square_bracket", "home", "end",
            "1", "5", "0", "enter", "backspace", "j", "k"]
    sizes = [(80, 24), (60, 20), (120, 40), (59, 19), (100, 30), (80, 24)]
    rng = random.Random(7)
    app = make_app(items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await pilot.press("v")  # live: most keys start or cancel a run
        for count in range(300):
            await pilot.press(rng.choice(keys))
            if count % 25 == 0:
                await pilot.resize_terminal(*rng.choice(sizes))
                await pilot.pause()
        await pilot.resize_terminal(80, 24)
        screen = app.screen
        if screen.grid.zoomed:
            await pilot.press("escape")
        await pilot.press("escape")  # cancel whatever runs
        screen.state.picked, screen.state.shares = [9], {9: 100.0}
        screen.live = False
        await helpers.wait_until(pilot, lambda: screen.sampling is None, what="the last run to stop")
        await pilot.press("g")
        await helpers.generated(pilot)
        assert screen.result.request.class_weights[9] == 1.0 and app.is_running
