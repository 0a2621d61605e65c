"""The generate screen driven by key presses, at 80x24 and at a large size, on the test model.

The expected pixels are sampled from the settings the keys chose, written out here, not read back
from the app: the test model draws other pixels for every setting (tests/core/test_test_model.py),
so a setting that does not reach the sampler shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from PIL import Image
from rich.color import Color

from core.checkpoint import file_hash
from core.sampling.recipes import recipe
from core.images import palette_lut, pixel_levels, read_metadata, save_png, to_uint8
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
from tui.pixels import HALF_BLOCK
from tui.widgets.item_grid import ItemGrid

GUIDANCE_ROW = 10  # rows 0-9 are the classes
TSHIRT = [1.0] + [0.0] * 9  # picked at start


def shares(**percent) -> list[float]:
    """Class weights from shares by class index, e.g. shares(c7=55, c9=45)."""
    weights = [0.0] * 10
    for name, value in percent.items():
        weights[int(name[1:])] = value / 100
    return weights


async def test_pick_mix_guidance_and_generate_shows_the_sampled_pixels(make_app, trained, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        assert "model ready" in helpers.status_text(app)
        screen = app.screen
        assert screen.state.picked == [0]  # T-shirt/top is picked at start, so a first g generates
        # unpick it; sneaker (row 7) and boot (row 9): arrows and space; then sneaker +5%, then 2 x ] guidance
        await pilot.press("space", *["down"] * 7, "space", "down", "down", "space", "up", "up", "plus")
        assert screen.state.picked == [7, 9]
        assert (screen.state.share(7), screen.state.share(9)) == (55, 45)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert screen.state.guidance == 3.0
        assert "3" in str(screen.controls.render()) and "boot" in str(screen.controls.render())
        await pilot.press("g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.class_weights[7] == 0.55 and request.class_weights[9] == 0.45 and request.guidance == 3.0
        assert (request.n, request.resolved_steps()) == (4, 4)
        expected = sample(trained, SampleRequest(shares(c7=55, c9=45), n=4, guidance=3.0, sampler="ddim", steps=4, seed=0))
        assert screen.grid.pixels == to_uint8(expected[:, 0]).numpy().tobytes()  # the classes, shares and g reached them
        strip = screen.grid.render_line(3)
        assert HALF_BLOCK in strip.text and strip.cell_length == screen.grid.scrollable_content_region.width
        assert screen.grid.columns == 2  # two 28-column items side by side at 80x24
        assert "4 items" in helpers.status_text(app)


async def test_j_and_k_move_like_the_arrows(make_app, helpers):
    app = make_app(items=6)
    async with app.run_test(size=(160, 50)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("space", "j", "j", "j", "space", "j", "k", "k")  # dress alone, cursor back on pullover
        assert screen.state.picked == [3]
        await pilot.press("space")
        assert screen.state.picked == [3, 2]  # in the order picked
        await pilot.press("g")
        await helpers.generated(pilot)
        columns = screen.grid.columns
        assert 1 < columns < 6  # two rows of items
        await pilot.press("tab", "j")
        assert isinstance(app.focused, ItemGrid) and screen.grid.selected == columns
        await pilot.press("k")
        assert screen.grid.selected == 0


async def test_i_switches_guidance_to_every_step_and_the_request_follows(make_app, trained, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert " all" not in str(screen.controls.render())
        await pilot.press("i")  # T-shirt/top (picked at start), guided at every step
        assert screen.state.guidance_interval is None
        assert " all" in str(screen.controls.render()) and "every step" in helpers.status_text(app)
        await pilot.press("g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.guidance_interval is None
        expected = sample(trained, SampleRequest(TSHIRT, n=4, guidance=2.0, sampler="ddim", steps=4, seed=0,
                                                 guidance_interval=None))
        assert screen.grid.pixels == to_uint8(expected[:, 0]).numpy().tobytes()
        await pilot.press("i")
        assert screen.state.guidance_interval == (21, 400) and "21 <= t <= 400" in helpers.status_text(app)


async def test_typed_share_guidance_and_a_ratio_of_zero(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("down", "space")  # tshirt (picked at start) and trouser, 50/50
        await pilot.press("7", "0", "enter")  # trouser := 70%
        assert (screen.state.share(0), screen.state.share(1)) == (30, 70)
        await pilot.press("up", "space")  # unpick tshirt: trouser alone has 100%
        await pilot.press("down", "0", "enter")  # a ratio of 0 for every class
        assert "ratio of 0" in helpers.status_text(app)
        assert screen.state.picked == [1] and screen.state.share(1) == 100
        await pilot.press(*["down"] * 9, "2", "5", "enter")  # guidance row: 25 is out of range
        assert "guidance must be between 0 and 20" in helpers.status_text(app)
        assert screen.state.guidance == 2.0
        await pilot.press("1", "2", ".", "5", "enter")
        assert screen.state.guidance == 12.5
        await pilot.press("space")  # unpick nothing here: guidance row; toggles nothing
        await pilot.press(*["up"] * 9, "space")  # unpick trouser: no class left
        await pilot.press("g")
        assert "no class picked" in helpers.status_text(app)
        assert screen.sampling is None and screen.result is None


async def test_black_level_row_shows_steps_and_types_the_level_the_request_gets(make_app, trained, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert "black" in str(screen.controls.render()) and "4/255" in str(screen.controls.render())
        await pilot.press(*["down"] * (GUIDANCE_ROW + 4))  # T-shirt/top is picked; guidance, mix, sampler, steps, black
        assert screen.controls.row == ("setting", "black")
        assert "0 = raw model pixels" in str(screen.controls.render())
        await pilot.press("left", "left", "left", "left", "left")  # 4 -> 0, and no lower
        assert screen.state.black_level == 0 and "off" in str(screen.controls.render())
        await pilot.press("4", "0", "enter")  # out of range: a message, the level unchanged
        assert "black level must be a whole number 0-32" in helpers.status_text(app)
        assert screen.state.black_level == 0
        await pilot.press("1", "6", "enter", "right", "g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.black_level == 17 and "17/255" in str(screen.controls.render())
        expected = sample(trained, SampleRequest(TSHIRT, n=4, guidance=2.0, sampler="ddim", steps=4, seed=0, black_level=17))
        assert screen.grid.pixels == to_uint8(expected[:, 0]).numpy().tobytes()
        assert min(b for b in screen.grid.pixels if b) > 17  # nothing dark but not black survives


async def test_escape_cancels_a_generation(make_app, helpers):
    app = make_app(sampler="ddpm", steps=1000, items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("g")  # T-shirt/top is picked at start
        await helpers.wait_until(pilot, lambda: screen.grid.count == 2, what="the first preview")
        await pilot.press("escape")
        await helpers.wait_until(pilot, lambda: screen.sampling is None, timeout=10, what="the cancel")
        assert "cancelled at step" in helpers.status_text(app)
        step = int(helpers.status_text(app).split("step ")[1].split("/")[0])
        assert 1 <= step < 1000 and screen.result is None
        await pilot.press("e")
        assert "nothing to export" in helpers.status_text(app)


async def test_export_then_reproduce_the_same_pixels_from_the_png(make_app, tmp_path, helpers):
    app = make_app(items=6)
    async with app.run_test(size=(160, 50)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("space", "down", "down", "space", "r", "g")  # pullover alone, a fresh seed
        await helpers.generated(pilot)
        first = screen.result
        assert screen.grid.columns == (160 - 22 - 1 + 1) // 29
        await pilot.press("tab", "right", "right")  # select item 3
        assert isinstance(app.focused, ItemGrid) and screen.grid.selected == 2
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
        files = sorted((tmp_path / "exports").glob("*.png"))
        assert len(files) == 2
        grid_png = next(p for p in files if p.name.startswith("grid_"))
        item_png = next(p for p in files if not p.name.startswith("grid_"))
        recipe = read_metadata(item_png)
        assert recipe["index"] == 2 and recipe["seed"] == first.request.seed and recipe["class_weights"][2] == 1.0
        assert recipe["checkpoint_hash"] == screen.generator.hash and read_metadata(grid_png)["n"] == 6
        await pilot.press("e")  # exporting again never overwrites
        await helpers.wait_until(pilot, lambda: len(list((tmp_path / "exports").glob("*.png"))) == 4, what="export 2")

        # change everything, then reopen the item PNG: the same grid comes back, item 3 selected
        await pilot.press("shift+tab", "space", "r", "left_square_bracket", "N")
        assert screen.state.seed != first.request.seed
        await pilot.press("o")
        await pilot.press(*str(item_png))
        await pilot.press("enter")
        await helpers.wait_until(pilot, lambda: screen.result is not None and screen.result is not first
                                 and screen.sampling is None, what="the reproduction")
        assert torch.equal(screen.result.images, first.images)
        assert screen.grid.selected == 2
        assert (screen.state.seed, screen.state.items, screen.state.picked) == (first.request.seed, 6, [2])
        from PIL import Image

        exported = pixel_levels(Image.open(item_png).convert("L"))  # (224, 224)
        assert torch.equal(exported[::8, ::8], to_uint8(screen.result.images[2, 0]))


async def test_blend_strip_steps_from_the_first_class_to_the_second(make_app, helpers):
    app = make_app(items=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("b")  # T-shirt/top alone (picked at start)
        assert "exactly two" in helpers.status_text(app) and screen.sampling is None
        await pilot.press(*["down"] * 7, "space", "b")  # tshirt first, then sneaker
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.shared_noise and len(request.per_item_weights) == 5
        shares = [(row[0], row[7]) for row in request.per_item_weights]
        assert shares == [(1.0, 0.0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.0, 1.0)]
        assert screen.grid.captions[1] == "tshirt 75 · sneaker 25"
        assert screen.grid.columns >= 3


async def test_zoom_and_palette_change_what_is_drawn(make_app, helpers):
    app = make_app(items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("g")  # T-shirt/top is picked at start
        await helpers.generated(pilot)
        await helpers.wait_until(pilot, lambda: "magma" in screen.palettes, what="the palettes")
        await pilot.press("p", "p")  # grey -> inverted -> magma
        assert screen.state.palette == "magma"
        level = screen.grid.pixels[0]
        top_left = list(screen.grid.render_line(0))[0]
        assert top_left.style.color == Color.from_rgb(*palette_lut("magma")[level].tolist())
        await pilot.press("z")
        await pilot.pause()
        assert screen.grid.zoomed and screen.has_class("-zoomed")
        tile = screen.grid._tiles[0]
        assert (tile.columns, tile.rows) == (42, 21)  # 1.5x: the whole item fits at 80x24, below its caption
        assert tile.y + tile.rows <= screen.grid.size.height and "zoom 1.5x" in screen.grid._labels[0].text
        assert not screen.controls.display
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        tile, scale = screen.grid._tiles[0], screen.grid.zoom_scale()
        assert scale >= 2 and tile.columns == 28 * scale and tile.y + tile.rows <= screen.grid.size.height
        await pilot.press("escape")
        assert not screen.grid.zoomed


async def test_unwritable_export_directory_is_a_message(make_app, tmp_path, helpers):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the export directory should be")
    app = make_app(export_dir=str(blocker / "exports"))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("g")  # T-shirt/top is picked at start
        await helpers.generated(pilot)
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "export failed" in helpers.status_text(app), what="the export error")
        assert "cannot" in helpers.status_text(app)
        assert screen.result is not None and screen.state.picked == [0]  # state intact, can still export elsewhere
        assert app.is_running


async def test_a_corrupt_checkpoint_is_a_message_and_another_can_be_opened(make_app, tmp_path, tiny_checkpoint, helpers):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    app = make_app(checkpoint=str(corrupt))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await helpers.wait_until(pilot, lambda: screen.model_error is not None, what="the checkpoint error")
        assert "not a usable checkpoint" in helpers.status_text(app)
        await pilot.press("g")  # T-shirt/top is picked at start
        assert "no model loaded" in helpers.status_text(app)
        await pilot.press("c", *str(tiny_checkpoint), "enter")
        await helpers.model_ready(pilot)
        assert screen.state.picked == [0] and screen.model_error is None
        await pilot.press("c", *str(corrupt), "enter")  # a failed switch keeps the model in use
        await helpers.wait_until(pilot, lambda: screen.model_error is not None, what="the second checkpoint error")
        assert f"still using {Path(tiny_checkpoint).name}" in helpers.status_text(app)
        assert screen.generator.path == Path(tiny_checkpoint)
        await pilot.press("g")
        await helpers.generated(pilot)


async def test_a_bad_png_is_a_message_from_the_command_line_and_from_the_dialog(make_app, tmp_path, helpers):
    bad_png = tmp_path / "not.png"
    bad_png.write_bytes(b"this is no PNG")
    no_recipe = tmp_path / "plain.png"
    from PIL import Image

    Image.new("L", (28, 28)).save(no_recipe)
    app = make_app(from_png=str(bad_png))
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.wait_until(pilot, lambda: "cannot reproduce" in helpers.status_text(app), what="the PNG error")
        assert "not a readable image" in helpers.status_text(app)
        await helpers.model_ready(pilot)
        await pilot.press("o", *str(no_recipe), "enter")
        await helpers.wait_until(pilot, lambda: "carries no fashion-tui recipe" in helpers.status_text(app),
                                 what="the recipe error")
        assert app.screen.sampling is None and app.is_running


async def test_generating_again_mid_run_gives_exactly_the_new_requests_pixels(make_app, trained, helpers):
    app = make_app(sampler="ddpm", steps=1000, items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("g")  # T-shirt/top is picked at start
        await helpers.wait_until(pilot, lambda: screen.grid.count == 2, what="the first preview")
        # s: DPM-Solver++ (ddpm -> dpm; the sampler's default guidance 1.75 follows), 4 steps, guidance 2.25
        await pilot.press("s", "down", "4", "enter", "right_square_bracket", "g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert (request.sampler, request.resolved_steps(), request.guidance) == ("dpm", 4, 2.25)
        expected = sample(trained, SampleRequest(TSHIRT, n=2, guidance=2.25, sampler="dpm", steps=4, seed=0))
        assert torch.equal(screen.result.images, expected)


async def test_from_png_loads_the_recipes_own_checkpoint_and_reproduces_it(make_app, tmp_path, trained_checkpoint,
                                                                             other_checkpoint, helpers):
    app = make_app(items=3)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await pilot.press("space", "down", "space", "l", "g")  # trouser alone, seed unlocked: a fresh seed
        await helpers.generated(pilot)
        first = app.screen.result
        assert not app.screen.state.seed_locked and first.request.seed == app.screen.state.seed
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
    grid_png = next((tmp_path / "exports").glob("grid_*.png"))
    assert read_metadata(grid_png)["checkpoint"] == "test-model.pt"  # the name only: no directory layout leaks
    copy = tmp_path / "renamed.pt"  # the recipe's model, found by its hash beside the model in use
    shutil.copy(trained_checkpoint, copy)

    again = make_app(checkpoint=str(other_checkpoint), from_png=str(grid_png))
    async with again.run_test(size=(80, 24)) as pilot:
        screen = again.screen
        await helpers.wait_until(pilot, lambda: screen.result is not None, what="the reproduction")
        assert screen.result.generator.path == copy  # switched to the recipe's checkpoint
        assert torch.equal(screen.result.images, first.images)
        assert screen.state.seed_locked and screen.state.seed == first.request.seed


async def test_an_older_recipe_finds_its_model_by_its_stored_path_and_keeps_the_average_mix(
        make_app, tmp_path, trained, trained_checkpoint, other_checkpoint, helpers):
    request = SampleRequest([0.0] * 7 + [0.5, 0.0, 0.5], n=2, steps=3, seed=4, mix="average").validate()
    old = recipe(request, file_hash(trained_checkpoint), None) | {"checkpoint": str(trained_checkpoint)}
    del old["mix"]  # written before the mix method was stored
    png = save_png(Image.new("L", (28, 28)), tmp_path / "old.png", old)
    app = make_app(checkpoint=str(other_checkpoint), from_png=str(png))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await helpers.wait_until(pilot, lambda: screen.result is not None, what="the reproduction")
        assert screen.result.generator.path == Path(trained_checkpoint) and screen.state.mix == "average"
        assert torch.equal(screen.result.images, sample(trained, request))


async def test_mix_row_switches_the_method_the_request_and_the_png_get(make_app, tmp_path, trained, helpers):
    app = make_app(items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("space", *["down"] * 7, "space", "down", "down", "space")  # T-shirt (picked at start) off; sneaker + boot
        assert screen.state.picked == [7, 9] and screen.state.mix == "compose" and "(compose)" in str(screen.query_one("#info").render())
        await pilot.press(*["down"] * 2)  # the guidance row, then the mix row
        assert screen.controls.row == ("setting", "mix") and "how classes combine" in str(screen.controls.render())
        await pilot.press("right")
        assert screen.state.mix == "norm" and "norm" in str(screen.controls.render())
        await pilot.press("x", "left", "x")  # average, norm, average
        assert screen.state.mix == "average" and "(average)" in str(screen.query_one("#info").render())
        await pilot.press("g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.mix == "average"
        expected = SampleRequest(shares(c7=50, c9=50), n=2, guidance=2.0, sampler="ddim", steps=4, seed=0, mix="average")
        assert torch.equal(screen.result.images, sample(trained, expected))
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
    grid_png = next((tmp_path / "exports").glob("grid_*.png"))
    assert read_metadata(grid_png)["mix"] == "average"


async def test_n_N_minus_home_and_end_reach_the_request_the_pixels_and_the_export(make_app, trained, tmp_path, helpers):
    app = make_app(items=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        await pilot.press("down", "space", "minus")  # trouser beside T-shirt (50/50), then trouser -5%
        assert screen.state.picked == [0, 1] and (screen.state.share(0), screen.state.share(1)) == (55, 45)
        await pilot.press("n")  # the cursor moves to the items row
        assert screen.state.items == 8 and screen.controls.row == ("setting", "items")
        await pilot.press("N", "N")  # 8 -> 4 -> 2
        assert screen.state.items == 2
        await pilot.press("g")
        await helpers.generated(pilot)
        expected = sample(trained, SampleRequest(shares(c0=55, c1=45), n=2, guidance=2.0, sampler="ddim", steps=4, seed=0))
        assert screen.grid.count == 2 and torch.equal(screen.result.images, expected)
        await pilot.press("tab", "end")
        assert isinstance(app.focused, ItemGrid) and screen.grid.selected == 1
        await pilot.pause()
        assert "▶ 2" in helpers.screen_text(app) and "▶ 1" not in helpers.screen_text(app)
        await pilot.press("home")
        assert screen.grid.selected == 0
        await pilot.press("end", "e")  # exports the grid and the selected item: the last one
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
    item_png = next(p for p in (tmp_path / "exports").glob("*.png") if not p.name.startswith("grid_"))
    assert read_metadata(item_png)["index"] == 1 and read_metadata(item_png)["n"] == 2
    exported = pixel_levels(Image.open(item_png).convert("L"))  # (224, 224)
    assert torch.equal(exported[::8, ::8], to_uint8(expected[1, 0]))


async def test_a_strip_with_every_setting_off_its_default_comes_back_from_its_png(make_app, trained, tmp_path, helpers):
    """Guidance, autoguidance, the interval, the mix and a blend strip's rows all go into the PNG's
    recipe, and o brings back exactly those pixels after every control was changed."""
    from core.sampling.request import blend_weights

    app = make_app(items=3)
    async with app.run_test(size=(120, 40)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert screen.generator.guide is not None  # test-model-guide.pt beside it
        # sneaker beside T-shirt; autoguidance on (g at its default follows to 1), g 1.5, every step guided,
        # the norm mix, a new seed; b: the strip from T-shirt to sneaker
        await pilot.press(*["down"] * 7, "space", "a", "right_square_bracket", "i", "x", "r", "b")
        await helpers.generated(pilot)
        first = screen.result
        seed = first.request.seed
        rows = blend_weights(0, 7, 3)
        expected = SampleRequest(rows[0], n=3, guidance=1.5, sampler="ddim", steps=4, seed=seed, shared_noise=True,
                                 per_item_weights=rows, guidance_interval=None, mix="norm", autoguidance=0.5)
        assert torch.equal(first.images, sample(trained, expected))
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
        grid_png = next((tmp_path / "exports").glob("grid_*.png"))

        await pilot.press("a", "left_square_bracket", "i", "x", "r", "g")  # every setting moved again; a 50/50 mix, no strip
        await helpers.generated(pilot)
        assert not torch.equal(screen.result.images, first.images)
        await pilot.press("o", *str(grid_png), "enter")
        await helpers.wait_until(pilot, lambda: screen.result is not None and screen.result.request.seed == seed
                                 and screen.sampling is None, what="the reproduction")
        assert torch.equal(screen.result.images, first.images)
        state = screen.state
        assert (state.guidance, state.autoguidance, state.guidance_interval, state.mix) == (1.5, 0.5, None, "norm")
        assert screen.result.request.per_item_weights == rows and state.picked == [0, 7]
