"""The a key: autoguidance on and off, what the panel shows, what the recipe records, models without a guide."""

import shutil

import torch

from core.checkpoint import file_hash
from core.images import read_metadata
from core.sampling.limits import AUTOGUIDANCE_ON, AUTOGUIDED_GUIDANCE, DEFAULT_GUIDANCE
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample

TSHIRT = [1.0] + [0.0] * 9  # picked at start


def _guidance_row(helpers, app) -> str:
    return next(line for line in helpers.screen_text(app).splitlines() if line.lstrip(" ▸›").startswith("guidance"))


async def test_a_turns_autoguidance_on_and_the_recipe_records_the_guide(make_app, trained, trained_checkpoint, tmp_path,
                                                                        helpers):
    app = make_app()  # the test model, its guide beside it
    async with app.run_test(size=(100, 30)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert screen.generator.guide is not None and "+AG" not in _guidance_row(helpers, app)
        await pilot.press("a")
        assert screen.state.autoguidance == AUTOGUIDANCE_ON and "+AG" in _guidance_row(helpers, app)
        assert screen.state.guidance == AUTOGUIDED_GUIDANCE  # g at its default follows
        await pilot.press("g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.autoguidance == AUTOGUIDANCE_ON
        expected = SampleRequest(TSHIRT, n=4, guidance=AUTOGUIDED_GUIDANCE, sampler="ddim", steps=4, seed=0,
                                 autoguidance=AUTOGUIDANCE_ON)
        assert torch.equal(screen.result.images, sample(trained, expected))  # the guide's push reached the pixels
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
        grid = next((tmp_path / "exports").glob("grid_*.png"))
        recipe = read_metadata(grid)
        assert recipe["autoguidance"] == request.autoguidance
        guide = trained_checkpoint.with_name("test-model-guide.pt")
        assert recipe["guide"] == guide.name and recipe["guide_hash"] == file_hash(guide)
        await pilot.press("a")
        assert screen.state.autoguidance == 0 and "+AG" not in _guidance_row(helpers, app)
        assert screen.state.guidance == DEFAULT_GUIDANCE[screen.state.sampler]


async def test_a_on_a_model_without_a_guide_says_so_and_changes_nothing(make_app, trained_checkpoint, tmp_path, helpers):
    alone = tmp_path / "alone.pt"  # no alone-guide.pt beside it
    shutil.copyfile(trained_checkpoint, alone)
    app = make_app(checkpoint=str(alone))
    async with app.run_test(size=(100, 30)) as pilot:
        await helpers.model_ready(pilot)
        assert app.screen.generator.guide is None
        await pilot.press("a")
        assert app.screen.state.autoguidance == 0
        assert "no guide model" in helpers.status_text(app)
