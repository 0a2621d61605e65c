"""The app shell: no torch before the first frame, small terminals, help, command palette, clean exits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from textual.widgets import Footer

from tui.commands import all_actions
from tui.widgets.too_small import TooSmall

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_app_does_not_import_torch():
    code = "import sys, tui.app, tui.cli; print('torch' in sys.modules, 'core.sampling.samplers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


async def test_a_too_small_terminal_shows_a_message_and_recovers(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(50, 15)) as pilot:
        await pilot.pause()
        message = app.screen.query_one(TooSmall)
        assert message.display and "too small" in str(message.render())
        assert not app.screen.query_one("#generate-body").display and not app.screen.query_one(Footer).display
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert not message.display and app.screen.query_one("#generate-body").display
        await pilot.resize_terminal(59, 30)  # too narrow even if tall
        await pilot.pause(0.2)
        assert message.display


async def test_help_lists_the_keys_and_goes_back(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(120, 90)) as pilot:
        await pilot.press("question_mark")
        assert app.current_mode == "help"
        await pilot.pause(0.2)
        lines = helpers.screen_text(app).splitlines()
        for key, what in (("g ⏎", "Generate"), ("e", "Export"), ("m", "Monitor"), ("q", "Quit"), ("z", "Zoom"),
                          ("t", "Train"), ("space", "Toggle"), ("[", "Guidance -0.5"), ("a", "Autoguidance")):
            keys = key.split()
            assert any(line.split()[:len(keys)] == keys and " ".join(line.split()[len(keys):]).startswith(what)
                       for line in lines if line.strip()), what
        assert "g = 0 means no guidance" in " ".join(line.strip() for line in lines)
        await pilot.press("escape")
        assert app.current_mode == "generate"


def test_the_command_palette_offers_the_actions_and_each_one_exists():
    from tui.app import FashionApp

    offered = {(mode, action): description for mode, action, description, _ in all_actions(FashionApp())}
    for wanted in (("generate", "generate"), ("generate", "mix"), ("generate", "live(True)"), ("generate", "blend"),
                   ("monitor", "train"), ("app", "quit"), ("app", "help")):
        assert wanted in offered, wanted
    owners = {"generate": FashionApp.MODES["generate"], "monitor": FashionApp.MODES["monitor"], "app": FashionApp}
    for mode, action in offered:  # a binding naming an action nobody implements would be a dead palette entry
        assert hasattr(owners[mode], "action_" + action.split("(")[0]), (mode, action)


async def test_a_palette_command_runs_in_its_mode(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"monitor: open run")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await helpers.wait_until(pilot, lambda: app.current_mode == "monitor" and app.screen.__class__.__name__ == "PathPrompt",
                                 timeout=10, what="the run prompt")


async def test_quitting_while_sampling_exits_cleanly(make_app, helpers, monkeypatch):
    import tui.jobs

    taken = []
    real_steps = tui.jobs.steps

    def counting_steps(generator, request, cancelled):
        for step in real_steps(generator, request, cancelled):
            taken.append(step.index)
            yield step

    monkeypatch.setattr(tui.jobs, "steps", counting_steps)
    app = make_app(sampler="ddpm", steps=1000, items=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await pilot.press("g")  # T-shirt/top is picked at start
        await helpers.wait_until(pilot, lambda: len(taken) > 2, what="sampling to run")
        await pilot.press("q")
    # how long q takes to exit is measured by bench/quit_latency.py, not asserted here
    time.sleep(0.3)
    count = len(taken)
    time.sleep(0.3)
    assert len(taken) == count < 1000  # the sampling thread stopped with the app
    assert app.return_code in (0, None)


async def test_quitting_while_training_stops_the_trainer(make_app, fake_data_dir, tmp_path, helpers):
    app = make_app(data_dir=str(fake_data_dir), run_dir=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m", "t")
        screen = app.screen
        await helpers.wait_until(pilot, lambda: screen.trainer is not None, what="the trainer")
        trainer = screen.trainer
        await pilot.press("q")
    assert trainer.stop_reason == "app closed"
    run_json = next((tmp_path / "runs").glob("tui-*")) / "run.json"
    deadline = time.monotonic() + 30
    while '"stopped"' not in (run_json.read_text() if run_json.exists() else ""):
        assert time.monotonic() < deadline, "the trainer did not save and stop"
        time.sleep(0.1)
    assert list(run_json.parent.glob("checkpoints/step-*.pt"))


async def test_a_long_status_message_wraps_at_80_columns_instead_of_losing_its_end(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await pilot.pause(0.1)
        hint_row = next(line for line in helpers.screen_text(app).splitlines() if "type 0-100, Enter" in line)
        path = "runs/tui-20261126-132317/checkpoints/step-0000015.pt"
        app.screen.say(f"training stopped; last checkpoint {path} · g generates with it", "success")
        await pilot.pause(0.1)
        lines = helpers.screen_text(app).splitlines()
        assert len(lines) == 24 and "Generate" in lines[-1]  # the footer keeps the bottom row
        status = " ".join(line.strip() for line in lines[-3:-1])
        assert path in status.replace(" ", "") and status.endswith("g generates with it")
        app.screen.say("short again")
        await pilot.pause(0.1)
        lines = helpers.screen_text(app).splitlines()
        assert lines[-2].strip() == "short again" and hint_row in lines  # one row again: the panel is whole


async def test_the_info_line_shows_a_four_class_mix_whole_at_80_columns(make_app, helpers):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await helpers.model_ready(pilot)
        await pilot.press("down", "space", "down", "space", "down", "space")  # T-shirt/top is picked at start
        await pilot.pause(0.1)
        text = " ".join(line.strip() for line in helpers.screen_text(app).splitlines())
        for name in ("tshirt 25%", "trouser 25%", "pullover 25%", "dress 25%"):
            assert name in text, name
