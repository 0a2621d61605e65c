"""The a key: autoguidance on and off, what the panel shows, what the recipe records, models without a guide."""

import shutil

import torch

from core.checkpoint import atomic_save, file_hash
from core.images import read_metadata
from core.sampling.limits import AUTOGUIDED_GUIDANCE, DEFAULT_GUIDANCE
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample


def _with_guide(tiny_checkpoint, tmp_path):
    """A copy of the tiny model with a differently perturbed copy beside it as NAME-guide.pt."""
    folder = tmp_path / "model"
    folder.mkdir()
    model = folder / "tiny.pt"
    shutil.copyfile(tiny_checkpoint, model)
    data = torch.load(tiny_checkpoint, weights_only=True)
    data["ema"] = {k: v + 0.02 * torch.randn_like(v) if v.is_floating_point() else v for k, v in data["ema"].items()}
    atomic_save(data, folder / "tiny-guide.pt")
    return model


def _guidance_row(helpers, app) -> str:
    return next(line for line in helpers.screen_text(app).splitlines() if line.lstrip(" ▸›").startswith("guidance"))


async def test_a_turns_autoguidance_on_and_the_recipe_records_the_guide(make_app, tiny_checkpoint, tmp_path, helpers):
    model = _with_guide(tiny_checkpoint, tmp_path)
    app = make_app(checkpoint=str(model))
    async with app.run_test(size=(100, 30)) as pilot:
        await helpers.model_ready(pilot)
        screen = app.screen
        assert screen.generator.guide is not None and "+AG" not in _guidance_row(helpers, app)
        await pilot.press("a")
        assert screen.state.autoguidance > 0 and "+AG" in _guidance_row(helpers, app)
        assert screen.state.guidance == AUTOGUIDED_GUIDANCE  # g at its default follows
        await pilot.press("g")
        await helpers.generated(pilot)
        request = screen.result.request
        assert request.autoguidance == screen.state.autoguidance
        plain = sample(screen.generator, SampleRequest(**(vars(request) | {"autoguidance": 0.0})))
        assert not torch.equal(screen.result.images, plain)  # the guide changed the pixels
        await pilot.press("e")
        await helpers.wait_until(pilot, lambda: "exported" in helpers.status_text(app), what="the export")
        grid = next((tmp_path / "exports").glob("grid_*.png"))
        recipe = read_metadata(grid)
        assert recipe["autoguidance"] == request.autoguidance
        assert recipe["guide"] == "tiny-guide.pt" and recipe["guide_hash"] == file_hash(model.parent / "tiny-guide.pt")
        await pilot.press("a")
        assert screen.state.autoguidance == 0 and "+AG" not in _guidance_row(helpers, app)
        assert screen.state.guidance == DEFAULT_GUIDANCE[screen.state.sampler]


async def test_a_on_a_model_without_a_guide_says_so_and_changes_nothing(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await helpers.model_ready(pilot)
        assert app.screen.generator.guide is None
        await pilot.press("a")
        assert app.screen.state.autoguidance == 0
        assert "no guide model" in helpers.status_text(app)
