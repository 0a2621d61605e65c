"""The generate screen's steering keys: variations of the selected item (w), edits from it (E) or
from a picture file (O), a class switch part-way through the steps (t), the selected item's
denoising film (f, exported with e) and the dense grid (d). Their strengths and the switch point are
rows of the side panel, so live mode regenerates on every change (core.sampling.steering does the work).

A mixin of GenerateScreen, like SettingKeys: the bindings stay in GenerateScreen.BINDINGS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual import work
from textual.worker import get_current_worker

from ..messages import ExportDone, ExportFailed, FilmReady, SourceLoaded, SteeringFailed
from .prompt import PathPrompt
from .recipes import EXPORT_SCALE


class SteeringKeys:
    def _selected_item(self, what: str) -> int | None:
        """The selected item of the finished run, or None after saying why there is none."""
        if self.sampling is not None:
            self.say(f"still denoising: wait for it to finish (or Esc) before {what}", "warning")
            return None
        if self.result is None or self.grid.count == 0:
            self.say(f"nothing to {what} yet: generate first (g), then select an item", "warning")
            return None
        return min(self.grid.selected, self.result.request.n - 1)

    # ------------------------------------------------------------ variations
    def action_vary(self) -> None:
        index = self._selected_item("vary")
        if index is None:
            return
        request, state = self.result.request, self.state
        label, source = state.init_label, state.init_image
        state.apply_request(request)  # the item's own settings (and a locked seed)
        if request.init_image == source:
            state.init_label = label
        if request.per_item_weights:
            state.set_weights(request.per_item_weights[index])
        again = request.variation_seed is not None
        if not again:  # a plain item (or an edit's, or a switch's): its own noise is the parent
            state.seed = request.seed if request.shared_noise else request.seed + index
        state.variation_seed = 0
        state.reroll_seed()  # a fresh variation seed
        self.controls.refresh()
        self._after_setting("vary")
        self.say(f"variations of seed {state.seed} at strength {state.variation_strength:.2f} (vary row: ←→ more or less, "
                 "space stops)" if not again else
                 f"more variations of the same parent (seed {state.seed}); a variation's own variations are not kept")
        if not self.live:
            self.generate()

    # ------------------------------------------------------------ edits
    def action_edit_item(self) -> None:
        index = self._selected_item("edit")
        if index is None:
            return
        self._edit_from(self.grid.item_pixels(index), f"item {index + 1}", "pick the classes to redraw it as")

    def action_edit_file(self) -> None:
        self.app.push_screen(PathPrompt("Edit from a picture: an exported item, or any PNG, JPEG, ... (made 28x28 grey)",
                                        "exports/….png"), lambda path: self._read_source(path) if path else None)

    @work(thread=True, group="source", exit_on_error=False)
    def _read_source(self, path: str) -> None:
        from core.images import read_source_image

        from .. import jobs

        try:
            pixels, how = read_source_image(path)
        except Exception as error:  # ValueError: one line naming the file
            self.post_message(SteeringFailed("edit", jobs.one_line(error)))
            return
        self.post_message(SourceLoaded(path, pixels, how))

    def on_source_loaded(self, message: SourceLoaded) -> None:
        self._edit_from(message.pixels, Path(message.path).name, message.how)

    def _edit_from(self, pixels: bytes, label: str, note: str) -> None:
        self.state.init_image, self.state.init_label = pixels, label.strip()
        self._after_setting("edit")
        self.say(f"editing {self.state.init_label} at strength {self.state.init_strength:.2f}: {note}")
        if not self.live:
            self.generate()

    # ------------------------------------------------------------ class switch
    def action_switch(self) -> None:
        first = self.state.other_mix is None
        self.state.toggle_switch_editing()
        if self.controls.row[0] != "class":
            self.controls.action_move(-self.controls.cursor)  # to the class list, which now edits the other mix
        self.controls.focus()
        self.controls.refresh()
        self._update_info()
        at = f"{self.state.switch_at:.0%}"
        if self.state.editing_switch:
            self.say(f"then: pick the classes asked for from {at} of the steps on (t: back to the first mix)"
                     + (", a copy of the first for now" if first else ""))
        else:
            self.say(f"first mix; the switch row moves the point ({at}) and space removes the switch")
        self._live_change()

    # ------------------------------------------------------------ the film
    def action_film(self) -> None:
        if self.grid.film is not None:
            self.action_zoom()  # back to the items
            return
        index = self._selected_item("film it")
        if index is None:
            return
        self._film(self.job, self.result.generator, self.result.request, index)
        self.say(f"recording item {index + 1}'s denoising film (the run again, every step kept)…")

    @work(thread=True, exclusive=True, group="film", exit_on_error=False)
    def _film(self, job: int, generator, request, index: int) -> None:
        from .. import jobs

        worker = get_current_worker()
        try:
            frames = jobs.film(generator, dataclasses.replace(request), index, cancelled=lambda: worker.is_cancelled)
        except Exception as error:
            self.post_message(SteeringFailed("film", jobs.one_line(error)))
            return
        if frames:
            self.post_message(FilmReady(job, index, frames))

    def on_film_ready(self, message: FilmReady) -> None:
        if message.job != self.job or self.result is None or self.sampling is not None:
            return  # another run started since: its items are on screen
        self.grid.select(message.index)
        self.set_class(True, "-zoomed")
        self.grid.show_film(message.frames)
        self.grid.focus()
        self.refresh_bindings()
        self.say(f"item {message.index + 1}'s film: {len(message.frames)} frames · ←→ step (↑↓ five) · e exports it "
                 "as an animated PNG · f or Esc back", "success")

    def export_film(self) -> None:
        self._export_film(self.result, self.grid.film, self.grid.selected, self.app.options.export_dir, self.state.palette)
        self.say(f"exporting the film to {self.app.options.export_dir}…")

    @work(thread=True, group="export", exit_on_error=False)
    def _export_film(self, result, frames, index: int, directory: str, palette: str) -> None:
        from .. import jobs

        try:
            path = jobs.export_item_film(frames, result.request, index, directory, result.generator, palette, EXPORT_SCALE)
        except Exception as error:  # ExportError, OSError: one line
            self.post_message(ExportFailed(jobs.one_line(error)))
            return
        self.post_message(ExportDone([str(path)]))

    def on_steering_failed(self, message: SteeringFailed) -> None:
        self.say(message.error if message.what == "edit" else f"cannot record the film: {message.error}", "error")

    # ------------------------------------------------------------ the dense grid
    def action_dense(self) -> None:
        self.grid.set_dense(not self.grid.dense)
        self.say("dense: items at half scale (z shows the selected one at full scale; d back)" if self.grid.dense
                 else "items at full scale")
