"""The student sampler in the generate screen: s reaches it only where one is loaded, the keys it
refuses say why in one line and change nothing, guidance and steering work through it, and its
recipes come back from their PNGs (with the student, or one line without it).

The app opens `student_checkpoint` (a copy of the test model with a student of it beside it as
test-model-student.pt); expected pixels come from `with_student`, the same files opened by core."""

from __future__ import annotations

import shutil

import pytest
import torch

from core.images import read_metadata, to_uint8
from core.sampling.limits import DEFAULT_STEPS, STUDENT, STUDENT_STEPS
from core.sampling.request import SampleRequest, blend_weights
from core.sampling.samplers import sample
from tui.state import STUDENT_REFUSES

from test_tui_steering import generate, move_to, select_item

TSHIRT = [1.0] + [0.0] * 9  # picked at start
BOOT = [0.0] * 9 + [1.0]
# the app's starting sampler is tests/tui/conftest.py's SMALL (ddim, 4 steps, 4 items): two s reach the student
TO_STUDENT = ("s", "s")


def pixels_of(images) -> bytes:
    return to_uint8(images[:, 0]).numpy().tobytes()


def student_request(class_weights=TSHIRT, **fields) -> SampleRequest:
    """What the app asks of the student after TO_STUDENT: 4 items at its default steps and guidance, in fp32."""
    return SampleRequest(class_weights, **({"n": 4, "sampler": STUDENT, "steps": DEFAULT_STEPS[STUDENT], "seed": 0,
                                            "guidance": 1.75, "precision": "fp32"} | fields))


def row(helpers, app, name: str) -> str:
    return next(line for line in helpers.screen_text(app).splitlines() if line.lstrip(" ▸›").startswith(name))


async def students_first_items(pilot, helpers):
    """The model loaded, the student reached with s and its first items drawn: the screen."""
    await helpers.model_ready(pilot)
    await pilot.press(*TO_STUDENT)
    await generate(pilot, helpers, "g")
    return pilot.app.screen


@pytest.fixture
def student_app(make_app, student_checkpoint):
    return lambda **options: make_app(**({"checkpoint": str(student_checkpoint), "precision": "fp32"} | options))


async def test_s_reaches_the_student_only_where_one_is_loaded(make_app, student_app, helpers):
    async with make_app().run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        state = pilot.app.screen.state
        assert pilot.app.screen.generator.student is None
        seen = []
        for _ in range(4):
            await pilot.press("s")
            seen.append(state.sampler)
        assert seen == ["ddpm", "dpm", "ddim", "ddpm"] and state.steps == 4  # ddim's 4 steps, set by the user, stay

    app = student_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        state = app.screen.state
        await pilot.press(*TO_STUDENT)
        assert (state.sampler, state.steps, state.guidance) == (STUDENT, DEFAULT_STEPS[STUDENT], 1.75)
        assert "STUDENT" in row(helpers, app, "sampler") and row(helpers, app, "steps").split()[-1] == "2"
        assert "test-model.pt (student, cpu fp32)" in str(app.screen.query_one("#info").render())
        assert helpers.status_text(app) == "student: 2 calls/item · s: back to the teacher"
        await move_to(pilot, ("setting", "steps"))
        await pilot.press("right", "right", "right")  # the steps row stops at the student's most
        assert state.steps == STUDENT_STEPS[1]
        assert any(line.startswith(" 1 call per item each") for line in helpers.screen_text(app).splitlines())  # the hint
        await pilot.press("5", "enter")
        assert "steps must be 1-4 for the student" in helpers.status_text(app) and state.steps == 4
        await pilot.press("s")  # back to the teacher: DPM-Solver++ at its own defaults
        assert (state.sampler, state.steps, state.guidance) == ("dpm", DEFAULT_STEPS["dpm"], 1.75)


async def test_the_keys_the_student_refuses_say_why_in_one_line_and_change_nothing(student_app, helpers):
    app = student_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("x", "i")  # on the teacher's sampler both change the request
        teacher = (screen.state.mix, screen.state.guidance_interval)
        assert teacher[0] != "compose" and teacher[1] is None
        await pilot.press(*TO_STUDENT)
        state = screen.state
        assert (state.mix, state.guidance_interval) == ("compose", (21, 400))  # set aside for the teacher
        assert helpers.status_text(app) == "student: 2 calls/item · interval, mix back with s"
        asked = state.request_fields()
        for key, what in (("a", "autoguidance"), ("i", "interval"), ("x", "mix")):
            await pilot.press(key)
            assert helpers.status_text(app) == STUDENT_REFUSES[what] and "\n" not in STUDENT_REFUSES[what]
            assert state.request_fields() == asked, key
        await move_to(pilot, ("setting", "mix"))
        await pilot.press("right")  # the mix row asks for the same
        assert helpers.status_text(app) == STUDENT_REFUSES["mix"] and state.request_fields() == asked
        await move_to(pilot, ("setting", "guidance"))
        await pilot.press("4", ".", "5", "enter")
        assert "the student learned guidance between 0 and 4" in helpers.status_text(app)
        await pilot.press(*["right_square_bracket"] * 8)  # ] stops at the student's 4
        assert state.guidance == 4.0
        await pilot.press("s")  # the teacher's mix and interval come back with its sampler
        assert (state.sampler, state.mix, state.guidance_interval) == ("dpm", *teacher)
        assert helpers.status_text(app) == "DPM: the teacher's interval, mix back"


async def test_guidance_and_shares_change_the_students_items_live(student_app, with_student, helpers):
    app = student_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await students_first_items(pilot, helpers)
        assert screen.grid.pixels == pixels_of(sample(with_student, student_request()))
        await pilot.press("v")  # live
        await generate(pilot, helpers, "right_square_bracket")
        expected = student_request(guidance=2.25)
        assert screen.result.request.guidance == 2.25 and screen.result.request.sampler == STUDENT
        assert screen.grid.pixels == pixels_of(sample(with_student, expected))
        assert screen.grid.pixels != pixels_of(sample(with_student, student_request()))  # g reached the pixels
        await move_to(pilot, ("class", 9))
        await generate(pilot, helpers, "space")  # boot joins tshirt, 50/50
        mixed = student_request([0.5] + [0.0] * 8 + [0.5], guidance=2.25)
        assert screen.grid.pixels == pixels_of(sample(with_student, mixed))


async def test_variations_edits_switches_film_dense_and_blend_go_through_the_student(student_app, with_student, helpers):
    app = student_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await students_first_items(pilot, helpers)
        await select_item(pilot, 2)
        await generate(pilot, helpers, "w")
        variation = screen.state.variation_seed
        expected = student_request(seed=2, shared_noise=True, variation_seed=variation, variation_strength=0.2)
        assert screen.grid.pixels == pixels_of(sample(with_student, expected))
        await move_to(pilot, ("setting", "vary"))
        await pilot.press("space")  # variations off
        source = screen.grid.item_pixels(1)
        await select_item(pilot, 1)
        await generate(pilot, helpers, "E")  # from t = 600, then the student's grid below it
        expected = student_request(seed=2, init_image=source, init_strength=0.6)
        assert screen.result.request.init_image == source
        assert screen.grid.pixels == pixels_of(sample(with_student, expected))
        await move_to(pilot, ("setting", "edit"))
        await pilot.press("space", "t", "space", *["down"] * 9, "space", "t")  # edit off; then boot
        await move_to(pilot, ("setting", "switch"))
        await pilot.press("0", ".", "5", "enter")  # the switch at the step boundary between the two calls
        await generate(pilot, helpers, "g")
        expected = student_request(seed=2, switch_to=BOOT, switch_at=0.5)
        assert screen.grid.pixels == pixels_of(sample(with_student, expected))
        assert screen.grid.pixels != pixels_of(sample(with_student, student_request(seed=2)))
        await select_item(pilot, 3)
        await pilot.press("f")
        await helpers.wait_until(pilot, lambda: screen.grid.film is not None, what="the film")
        assert len(screen.grid.film) == DEFAULT_STEPS[STUDENT] + 1  # a frame per step, then the item
        assert screen.grid.film[-1][1] == screen.grid.item_pixels(3)
        await pilot.press("f", "d")
        assert screen.grid.dense and screen.grid.film is None
        await pilot.press("d")
        await move_to(pilot, ("setting", "switch"))
        await pilot.press("space")  # no switch; tshirt and boot give a strip
        await move_to(pilot, ("class", 9))
        await pilot.press("space")
        await generate(pilot, helpers, "b")
        strip = blend_weights(0, 9, 4)
        expected = student_request(strip[0], seed=2, shared_noise=True, per_item_weights=strip)
        assert [row[9] for row in screen.result.request.per_item_weights] == pytest.approx([0, 1 / 3, 2 / 3, 1])
        assert screen.grid.pixels == pixels_of(sample(with_student, expected))


async def test_a_student_recipe_comes_back_from_its_png_and_s_leaves_it(student_app, with_student, student_checkpoint,
                                                                         tmp_path, helpers):
    app = student_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press(*TO_STUDENT, "right_square_bracket")
        await move_to(pilot, ("setting", "steps"))
        await pilot.press("3", "enter")
        await generate(pilot, helpers, "g")
        made = screen.result
        assert pixels_of(made.images) == pixels_of(sample(with_student, student_request(steps=3, guidance=2.25)))
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
        grid_png = next((tmp_path / "exports").glob("grid_*.png"))
        recipe = read_metadata(grid_png)
        assert (recipe["sampler"], recipe["steps"], recipe["guidance"]) == (STUDENT, 3, 2.25)
        assert recipe["student"] == "test-model-student.pt" and recipe["student_hash"] == with_student.student.hash
        await pilot.press("s", "right_square_bracket")  # the teacher again, and another g
        assert screen.state.sampler == "dpm"
        await pilot.press("o", *str(grid_png), "enter")
        await helpers.wait_until(pilot, lambda: screen.result is not None and screen.result is not made
                                 and screen.sampling is None, what="the reproduction")
        assert torch.equal(screen.result.images, made.images)
        assert (screen.state.sampler, screen.state.steps, screen.state.guidance) == (STUDENT, 3, 2.25)
        await pilot.press("s")  # a recipe's student steps on like one reached with s
        assert (screen.state.sampler, screen.state.steps) == ("dpm", DEFAULT_STEPS["dpm"])

    alone = tmp_path / "alone" / "test-model.pt"  # the recipe's model, found by hash, with no student beside it
    alone.parent.mkdir()
    shutil.copy(student_checkpoint, alone)
    again = student_app(checkpoint=str(alone), from_png=str(grid_png))
    async with again.run_test(size=(80, 24)) as pilot:
        screen = again.screen
        await helpers.wait_until(pilot, lambda: "student's recipe" in helpers.status_text(again), what="the line")
        assert helpers.status_text(again) == "a student's recipe: put test-model-student.pt beside test-model.pt"
        assert screen.result is None and screen.sampling is None and screen.state.sampler == STUDENT
        await pilot.press("s")  # no student loaded: s steps on to the teacher without an error
        assert (screen.state.sampler, screen.state.steps) == ("dpm", DEFAULT_STEPS["dpm"])
        await pilot.press("s", "s", "s")
        assert screen.state.sampler == "dpm"  # ddim, ddpm, dpm: never the student
        await generate(pilot, helpers, "g")


async def test_the_help_and_the_command_line_name_the_students_steps(make_app, helpers, capsys):
    from tui.cli import build_parser

    app = make_app()
    async with app.run_test(size=(120, 90)) as pilot:
        await pilot.press("question_mark")
        text = " ".join(helpers.screen_text(app).split())
        assert f"the student ({STUDENT_STEPS[0]}-{STUDENT_STEPS[1]} steps, default {DEFAULT_STEPS[STUDENT]}" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    assert "(1-4 for the student;" in " ".join(capsys.readouterr().out.split())


async def test_with_no_sampler_asked_for_the_app_starts_on_the_student_where_one_is_loaded(make_app, student_app, with_student,
                                                                                          helpers):
    app = student_app(sampler=None, steps=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        state = app.screen.state
        assert (state.sampler, state.steps, state.guidance) == (STUDENT, DEFAULT_STEPS[STUDENT], 1.75)
        assert "STUDENT" in row(helpers, app, "sampler")
        await generate(pilot, helpers, "g")
        expected = student_request(n=app.options.items)
        assert app.screen.grid.pixels == pixels_of(sample(with_student, expected))
        await pilot.press("s")  # one key back to the teacher's default
        assert (state.sampler, state.steps, state.guidance) == ("dpm", DEFAULT_STEPS["dpm"], 1.75)

    for other in (make_app(sampler=None, steps=None), student_app()):  # no student here; a sampler asked for (ddim)
        async with other.run_test(size=(80, 24)) as pilot:
            await helpers.model_ready(pilot)
            assert other.screen.state.sampler == (other.options.sampler or "dpm")
