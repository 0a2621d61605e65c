"""The steering keys at 80x24: variations (w), edits from an item (E) or a file (O), class switches (t),
the denoising film (f), the dense grid (d), their rows in live mode, and their recipes.

Expected pixels come from requests written out from the values the keys chose (the variation seed,
which w rolls, is read from the app)."""

from __future__ import annotations

from PIL import Image

from core.images import read_metadata, to_uint8
from core.sampling.limits import DEFAULT_INIT_STRENGTH, DEFAULT_SWITCH_AT, DEFAULT_VARIATION_STRENGTH
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
from tui.widgets.controls import ROWS

TSHIRT = [1.0] + [0.0] * 9  # picked at start
assert (DEFAULT_VARIATION_STRENGTH, DEFAULT_INIT_STRENGTH) == (0.2, 0.6)  # the strengths one left/right moves from
BOOT = [0.0] * 9 + [1.0]
SMALL = {"n": 4, "sampler": "ddim", "steps": 4, "precision": "fp32"}  # tests/tui/conftest.py SMALL, in fp32


def pixels_of(images) -> bytes:
    return to_uint8(images[:, 0]).numpy().tobytes()


async def move_to(pilot, row: tuple) -> None:
    controls = pilot.app.screen.controls
    controls.focus()
    await pilot.press(*["down"] * ((ROWS.index(row) - controls.cursor) % len(ROWS)))
    assert controls.row == row


async def generate(pilot, helpers, *keys: str) -> None:
    screen = pilot.app.screen
    job = screen.job
    await pilot.press(*keys)
    await helpers.wait_until(pilot, lambda: screen.job > job and screen.result is not None and screen.sampling is None,
                             what="a new generation to finish")


async def select_item(pilot, index: int) -> None:
    grid = pilot.app.screen.grid
    grid.focus()
    await pilot.press("home", *["right"] * index)
    assert grid.selected == index


async def generated_and_selected(pilot, helpers, index: int):
    """The model loaded, a first generation done and item `index` selected: the screen."""
    await helpers.model_ready(pilot)
    await generate(pilot, helpers, "g")
    await select_item(pilot, index)
    return pilot.app.screen


async def test_w_makes_variations_of_the_selected_item_and_the_vary_row_steers_them_live(make_app, trained, helpers):
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await generated_and_selected(pilot, helpers, 2)
        await generate(pilot, helpers, "w")
        state = screen.state
        variation = state.variation_seed
        assert isinstance(variation, int) and state.seed == 2 and screen.controls.row == ("setting", "vary")
        expected = SampleRequest(TSHIRT, seed=2, shared_noise=True, variation_seed=variation,
                                 variation_strength=DEFAULT_VARIATION_STRENGTH, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))  # around item 3 (seed 2), not seed 0
        assert "vary" in helpers.screen_text(app) and f"{DEFAULT_VARIATION_STRENGTH:.2f}" in helpers.screen_text(app)
        await move_to(pilot, ("setting", "vary"))
        await pilot.press("v")  # live: the row's left/right regenerates
        await generate(pilot, helpers, "right")
        assert screen.result.request.variation_strength == 0.25
        stronger = SampleRequest(TSHIRT, seed=2, shared_noise=True, variation_seed=variation,
                                 variation_strength=0.25, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, stronger))
        await generate(pilot, helpers, "space")  # off: plain items again, the parent first
        assert screen.result.request.variation_seed is None and not screen.result.request.shared_noise
        assert screen.grid.pixels == pixels_of(sample(trained, SampleRequest(TSHIRT, seed=2, **SMALL)))


async def test_E_redraws_the_selected_item_as_the_picked_classes_and_the_edit_row_sets_the_strength(make_app, trained,
                                                                                                    helpers):
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await generate(pilot, helpers, "g")
        source = screen.grid.item_pixels(1)
        await move_to(pilot, ("class", 0))
        await pilot.press("space", *["down"] * 9, "space")  # tshirt off, boot on
        await select_item(pilot, 1)
        await generate(pilot, helpers, "E")
        request = screen.result.request
        assert request.init_image == source and request.class_weights == BOOT
        expected = SampleRequest(BOOT, seed=0, init_image=source, init_strength=DEFAULT_INIT_STRENGTH, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))
        assert "edit 0.60 from item 2" in str(screen.query_one("#info").render())
        await move_to(pilot, ("setting", "edit"))
        await pilot.press("v")
        await generate(pilot, helpers, "left")
        expected = SampleRequest(BOOT, seed=0, init_image=source, init_strength=0.55, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))
        await pilot.press("1", ".", "5", "enter")  # outside 0-1: one line, nothing changes
        assert "edit strength must be between 0 and 1" in helpers.status_text(app)
        assert screen.state.init_strength == 0.55


async def test_t_asks_for_a_second_mix_from_the_switch_point(make_app, trained, helpers):
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("t")
        assert screen.state.editing_switch and "THEN" in helpers.screen_text(app).splitlines()[0]
        await pilot.press("space", *["down"] * 9, "space")  # the "then" mix: boot instead of tshirt
        await generate(pilot, helpers, "g")
        request = screen.result.request
        assert (request.class_weights, request.switch_to, request.switch_at) == (TSHIRT, BOOT, DEFAULT_SWITCH_AT)
        expected = SampleRequest(TSHIRT, seed=0, switch_to=BOOT, switch_at=DEFAULT_SWITCH_AT, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))
        await pilot.press("t")  # back to the first mix, which is still tshirt
        assert not screen.state.editing_switch and screen.state.picked == [0]
        assert "tshirt 100% · then boot 100% from 40%" in str(screen.query_one("#info").render())
        await move_to(pilot, ("setting", "switch"))
        await pilot.press("0", ".", "7", "5", "enter")
        await generate(pilot, helpers, "g")
        assert screen.result.request.switch_at == 0.75
        expected = SampleRequest(TSHIRT, seed=0, switch_to=BOOT, switch_at=0.75, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))
        await pilot.press("space")
        assert screen.state.other_mix is None and screen.state.request_fields().get("switch_to") is None


async def test_f_steps_through_the_selected_items_film_and_e_exports_it(make_app, trained, tmp_path, helpers):
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        grid = (await generated_and_selected(pilot, helpers, 3)).grid
        await pilot.press("f")
        await helpers.wait_until(pilot, lambda: grid.film is not None, what="the film")
        assert len(grid.film) == 5 and grid.zoomed  # 4 steps and the finished item
        assert "step 1/4  t=999" in helpers.screen_text(app) and "predicted x_0" in helpers.screen_text(app)
        await pilot.press("right", "right")
        assert grid.frame == 2 and "step 3/4" in helpers.screen_text(app)
        await pilot.press("end")
        assert grid.film[-1][1] == grid.item_pixels(3) == grid.film[-1][2]
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the film's export")
        film = next((tmp_path / "exports").glob("film_*.png"))
        with Image.open(film) as image:
            assert image.n_frames == 5
        recipe = read_metadata(film)
        assert recipe["index"] == 3 and recipe["film"] is True
        await pilot.press("escape")
        assert grid.film is None and not grid.zoomed


async def test_d_shows_eight_items_at_80x24_and_z_still_opens_the_selection_at_full_scale(make_app, helpers):
    app = make_app(items=16)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        grid = app.screen.grid
        await generate(pilot, helpers, "g")
        height = grid.scrollable_content_region.height
        assert sum(tile.y + tile.rows <= height for tile in grid._tiles) == 2  # full scale: two at a time
        await pilot.press("d")
        assert grid.dense and sum(tile.y + tile.rows <= height for tile in grid._tiles) >= 8
        assert all(tile.width == 14 for tile in grid._tiles)
        first = grid._tiles[0].pixels
        full = grid.item_pixels(0)
        # area-averaged (Pillow's box filter rounds in fixed point: within one level of the exact mean)
        assert abs(first[0] - (full[0] + full[1] + full[28] + full[29]) / 4) <= 1
        await select_item(pilot, 5)
        await pilot.press("z")
        assert grid.zoomed and grid._tiles[0].width == 42  # 1.5x at 80x24, as without d
        await pilot.press("z")
        assert grid.dense and not grid.zoomed


async def test_O_edits_from_a_picture_file_and_a_bad_file_changes_nothing(make_app, trained, tmp_path, helpers):
    picture = tmp_path / "photo.png"
    photo = Image.new("RGB", (90, 60), (250, 250, 250))
    photo.paste((20, 20, 20), (10, 20, 80, 50))
    photo.save(picture)
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("O")
        await pilot.press(*str(tmp_path / "missing.png"), "enter")
        await helpers.wait_until(pilot, lambda: "does not exist" in helpers.status_text(app), what="the refusal")
        assert screen.state.init_image is None and screen.result is None and screen.sampling is None
        await pilot.press("O")
        await pilot.press(*str(picture), "enter")
        await helpers.wait_until(pilot, lambda: screen.result is not None and screen.sampling is None, what="the edit")
        from core.images import read_source_image

        source, _ = read_source_image(picture)
        assert screen.result.request.init_image == source and screen.state.init_label == "photo.png"
        expected = SampleRequest(TSHIRT, seed=0, init_image=source, init_strength=DEFAULT_INIT_STRENGTH, **SMALL)
        assert screen.grid.pixels == pixels_of(sample(trained, expected))


async def test_a_steered_export_reopens_with_its_picture_variation_and_switch(make_app, tmp_path, helpers):
    app = make_app(precision="fp32")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await generated_and_selected(pilot, helpers, 1)
        await generate(pilot, helpers, "E")
        await generate(pilot, helpers, "w")
        await pilot.press("t", "space", *["down"] * 9, "space", "t")
        await generate(pilot, helpers, "g")
        steered, pixels = screen.result.request, screen.grid.pixels
        assert steered.init_image and steered.variation_seed is not None and steered.switch_to == BOOT
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
    grid = next((tmp_path / "exports").glob("grid_*.png"))
    again = make_app(from_png=str(grid))
    async with again.run_test(size=(80, 24)) as pilot:
        screen = again.screen
        await helpers.wait_until(pilot, lambda: screen.result is not None and screen.sampling is None, what="the recipe")
        assert screen.grid.pixels == pixels
        state = screen.state
        assert state.init_image == steered.init_image and state.variation_seed == steered.variation_seed
        assert state.request_fields()["switch_to"] == BOOT


async def test_help_and_the_palette_name_every_steering_key(make_app, helpers):
    from tui.commands import all_actions

    app = make_app()
    async with app.run_test(size=(120, 90)) as pilot:
        offered = {action for mode, action, _, _ in all_actions(app) if mode == "generate"}
        assert {"vary", "edit_item", "edit_file", "switch", "film", "dense"} <= offered
        await pilot.press("question_mark")
        text = " ".join(helpers.screen_text(app).split())
        for name in ("Variations", "Edit the item", "Edit a picture", "Class switch", "Film", "Dense grid"):
            assert name in text, name


async def test_the_steering_rows_scroll_into_view_at_80x24_with_their_hint(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        lines = helpers.screen_text(app).splitlines()
        assert "CLASSES" in lines[0] and any("palette" in line for line in lines)  # the first view is as before
        await move_to(pilot, ("setting", "switch"))
        lines = helpers.screen_text(app).splitlines()
        assert any(line.startswith("▸switch") and line[:21].rstrip().endswith("off") for line in lines)
        assert any("t edit 'then' mix" in line for line in lines) and len(lines) == 24
        await pilot.press("right")
        assert "no class switch: t picks the classes" in helpers.status_text(app)
        await move_to(pilot, ("class", 0))
        assert "CLASSES" in helpers.screen_text(app).splitlines()[0]
