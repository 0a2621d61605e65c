"""The generate screen's exports and PNG recipes: write the items with their recipe, read one back
and reproduce it on the model it names (found by hash), loading that model first if need be.

A mixin of GenerateScreen (its handlers follow Textual's on_<message> naming, which Textual finds
along the screen's MRO); the work runs in thread workers that post tui.messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work

from core.sampling.limits import STUDENT

from ..messages import ExportDone, ExportFailed, RecipeFailed, RecipeLoaded
from .prompt import PathPrompt

SHIPPED_MODEL = "the shipped model"
EXPORT_SCALE = 8  # exported PNGs: 28px items upscaled to 224px, nearest neighbour


@dataclass
class Result:
    request: Any  # core.sampling.request.SampleRequest
    images: Any  # (n,1,28,28) tensor
    generator: Any  # the model that made them (its hash goes into the recipe)
    blend: bool


@dataclass
class Pending:
    """A generation asked for before the model was ready."""

    request: Any = None  # a recipe's exact request, or None: build from the controls
    blend: tuple[int, int] | None = None
    recipe: dict | None = None
    select: int | None = None
    model: str | None = None  # the recipe's checkpoint, found by its hash


class ExportsAndRecipes:
    def action_export(self) -> None:
        if self.sampling is not None:
            self.say("still denoising: wait for it to finish, or Esc to cancel", "warning")
            return
        if self.result is None:
            self.say("nothing to export yet: generate first (g)", "warning")
            return
        if self.grid.film is not None:
            self.export_film()  # the film on screen (tui.screens.steering)
            return
        request = self.result.request
        columns = request.n if self.result.blend else min(8, request.n)
        selected = self.grid.selected if self.grid.selected < request.n else None
        self._export(self.result, self.app.options.export_dir, self.state.palette, columns, selected)
        self.say(f"exporting to {self.app.options.export_dir}…")

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, result: Result, directory: str, palette: str, columns: int, selected: int | None) -> None:
        from .. import jobs

        try:
            paths = jobs.export(result.images, result.request, directory, result.generator, palette,
                                EXPORT_SCALE, columns, selected)
        except Exception as error:  # ExportError, OSError: one line
            self.post_message(ExportFailed(jobs.one_line(error)))
            return
        self.post_message(ExportDone([str(p) for p in paths]))

    def on_export_done(self, message: ExportDone) -> None:
        names = ", ".join(Path(p).name for p in message.paths)
        folder = Path(message.paths[0]).parent if message.paths else self.app.options.export_dir
        self.say(f"exported {len(message.paths)} PNGs to {folder}/: {names}", "success")

    def on_export_failed(self, message: ExportFailed) -> None:
        self.say(f"export failed: {message.error}", "error")

    def action_open_png(self) -> None:
        self.app.push_screen(PathPrompt("Open an exported PNG and reproduce its recipe", "exports/grid_….png"),
                             lambda path: self.open_recipe(path) if path else None)

    def action_open_checkpoint(self) -> None:
        self.app.push_screen(PathPrompt("Load a generator checkpoint", "runs/NAME/checkpoints/step-….pt"),
                             lambda path: self.load_model(path) if path else None)

    @work(thread=True, group="recipe", exit_on_error=False)
    def open_recipe(self, path: str) -> None:
        from .. import jobs

        try:
            request, index, recipe = jobs.read_recipe(path)
            loading = [Path(self.model_loading).parent] if self.model_loading not in (None, SHIPPED_MODEL) else []
            model = jobs.locate_recipe_model(recipe, path, self.generator, loading)
        except Exception as error:  # ValueError, SampleRequestError: one line
            self.post_message(RecipeFailed(path, jobs.one_line(error)))
            return
        self.post_message(RecipeLoaded(path, request, index, recipe, str(model) if model else None))

    def on_recipe_failed(self, message: RecipeFailed) -> None:
        self.say(f"cannot reproduce {message.path}: {message.error}", "error")

    def on_recipe_loaded(self, message: RecipeLoaded) -> None:
        self.state.apply_request(message.request)
        self.controls.refresh()
        self._update_info()
        self.recipe_checkpoint_tried = False
        self.say(f"recipe from {Path(message.path).name}: reproducing it")
        self._run_recipe(Pending(message.request, recipe=message.recipe, select=message.index, model=message.model))

    def _run_recipe(self, pending: Pending) -> None:
        wanted = pending.recipe.get("checkpoint_hash")
        if self.generator is None and self.model_loading:
            self.pending = pending
            return
        if self.generator is not None and self.generator.hash == wanted:
            if self._recipe_side_models_ready(pending):
                self.generate(pending.request, select=pending.select)
            return
        if pending.model and not self.recipe_checkpoint_tried:
            self.recipe_checkpoint_tried = True
            self.pending = pending
            self.load_model(pending.model)
            self.say(f"loading the recipe's checkpoint {pending.model}")
            return
        current = self.generator.hash if self.generator is not None else "none"
        name = pending.recipe.get("checkpoint") or "a checkpoint"
        self.say(f"the recipe was made with {Path(str(name)).name} ({wanted}), not found here; this model is {current}: "
                 "pixels will differ", "warning")
        self.generate(pending.request, select=pending.select)

    def _recipe_side_models_ready(self, pending: Pending) -> bool:
        """The recipe's guide and student (each found beside its model, checked by hash): a warning
        where the one here is another (the pixels will differ); False after one line where the
        recipe's student is missing, which no other model stands in for."""
        recipe, request = pending.recipe, pending.request
        for role, what, used in (("guide", "autoguided by", request.autoguidance), ("student", "drawn by", request.sampler == STUDENT)):
            here, wanted = getattr(self.generator, role), recipe.get(f"{role}_hash")
            named = f"{recipe.get(role) or 'its ' + role} ({wanted})"
            if used and here is None and role == "student":
                from core.checkpoint import student_path_for  # torch: loaded with the model already

                model = self.generator.path or Path("NAME.pt")  # where open_generator looks (its hash: fashion-tui info)
                self.say(f"a student's recipe: put {student_path_for(model).name} beside {model.name}", "error")
                return False
            if used and here is not None and here.hash != wanted:
                self.say(f"the recipe was {what} {named}, this model's {role} is {here.hash}: pixels will differ", "warning")
        return True

    def _run_pending(self, pending: Pending) -> None:
        if pending.recipe is not None:
            self._run_recipe(pending)
        else:
            self.generate(pending.request, pending.blend, pending.select)
