"""Checks that the tests can fail: each behaviour below is broken on purpose, and the tests named
beside it must go red.

    python tests/mutations.py               # every mutation: runs its tests, reports red or SURVIVED
    python tests/mutations.py NAME ...      # some of them
    python tests/mutations.py --every-failure NAME   # all the tests that fail, not just the first
    python tests/mutations.py --list

A mutation is one small edit of one function's source (old text -> new text, each found exactly
once, so an edit that no longer applies is an error, not a pass). It is applied inside the pytest
process only: this file is also a pytest plugin (`-p mutations`) that, when $FASHION_TUI_MUTATION
names a mutation, compiles the edited function and swaps its code into the loaded one. The files
on disk never change, so it is safe beside other work in the checkout; tests that run the code
in a subprocess do not see the mutation, so the tests named here run it in-process.

A new test for a behaviour gets a row here (or is broken by hand once, the same way): break the
behaviour, see the test fail, put it back (tests/README.md).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ENV = "FASHION_TUI_MUTATION"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    module: str
    function: str  # "name" or "Class.name"
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids or files that must fail


GENERATE = "tests/tui/test_tui_generate.py"
STEPS_LINE = "        yield from sample_steps(generator, request"  # the line that hands the request to the sampler

MUTATIONS = {
    # tui/jobs samples another request than the one it was given; the request the screen records stays right
    "jobs-always-tshirt": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'class_weights': [1.0] + [0.0] * 9, 'per_item_weights': None}))\n"
        + STEPS_LINE, (GENERATE, "tests/tui/test_tui_live.py")),
    "jobs-always-average-mix": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'mix': 'average'}))\n" + STEPS_LINE, (GENERATE,)),
    "jobs-guidance-clamped-to-1": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'guidance': min(request.guidance, 1.0)}))\n" + STEPS_LINE,
        (GENERATE, "tests/tui/test_tui_live.py")),
    "jobs-interval-dropped": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'guidance_interval': None}))\n" + STEPS_LINE, (GENERATE,)),
    "jobs-interval-always-default": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'guidance_interval': (21, 400)}))\n" + STEPS_LINE, (GENERATE,)),
    "jobs-autoguidance-dropped": Mutation("tui.jobs", "steps", STEPS_LINE,
        "        request = SampleRequest(**(vars(request) | {'autoguidance': 0.0}))\n" + STEPS_LINE,
        ("tests/tui/test_tui_autoguidance.py", GENERATE)),
    # a PNG's recipe loses a field on the way back to a request
    "recipe-ignores-guidance": Mutation("core.sampling.recipes", "request_from_recipe",
        'guidance=float(data["guidance"])', "guidance=None",
        ("tests/core/sampling/test_recipes.py", "tests/faults/test_fuzz_recipes.py", GENERATE)),
    "recipe-ignores-autoguidance": Mutation("core.sampling.recipes", "request_from_recipe",
        'autoguidance=float(data.get("autoguidance", 0.0))', "autoguidance=0.0",
        ("tests/core/sampling/test_recipes.py", "tests/faults/test_fuzz_recipes.py", GENERATE)),
    "recipe-ignores-per-item-weights": Mutation("core.sampling.recipes", "request_from_recipe",
        'per_item_weights=[[float(w) for w in row] for row in data["per_item_weights"]] if data.get("per_item_weights") else None',
        "per_item_weights=None",
        ("tests/core/sampling/test_recipes.py", "tests/faults/test_fuzz_recipes.py", GENERATE)),
    # the samplers
    "dpm-no-restart-at-guidance-edge": Mutation("core.sampling.dpm_solver", "DPMSolverModule.generator",
        "self.same_model(previous[2], s)", "True", ("tests/core/sampling/test_sampling.py",)),
    "ddpm-step-noise-zero": Mutation("core.sampling.samplers", "make_sampler",
        "schedule.noise_source = lambda x_like: noise(x_like.shape, x_like.dtype).to(x_like.device)",
        "schedule.noise_source = lambda x_like: torch.zeros_like(x_like)", ("tests/core/sampling/test_sampling.py",)),
    # training
    "pause-returns-at-once": Mutation("core.training.trainer", "Trainer._wait_while_paused",
        "if self._resume_allowed.is_set():", "if True:",
        ("tests/core/training/test_pause_and_resume.py", "tests/tui/test_tui_monitor.py")),
    "resume-skips-ema": Mutation("core.training.state", "restore",
        'ema.load_state_dict(state["ema"])', "pass", ("tests/core/training/test_pause_and_resume.py",)),
    # files and data
    "half-export-writes-zeros": Mutation("core.checkpoint", "export_generator",
        "(v.half() if half and v.is_floating_point() else v)",
        "(torch.zeros_like(v.half()) if half and v.is_floating_point() else v)", ("tests/core/test_checkpoint.py",)),
    "classifier-never-steps": Mutation("core.evaluation.classifier", "train_classifier",
        "            optimizer.step()\n", "", ("tests/core/evaluation/test_classifier.py",)),
    "download-error-unguarded": Mutation("core.data", "download",
        "    except Exception as error:  # network errors come in many types\n", "    except ZeroDivisionError as error:\n",
        ("tests/core/test_data.py",)),
    # the monitor's reader of a run directory
    "runwatch-half-written-run-json-raises": Mutation("tui.runwatch", "RunTailer._read_info",
        "except (OSError, ValueError):", "except OSError:", ("tests/tui/test_tui_runwatch.py",)),
    "runwatch-damaged-png-raises": Mutation("tui.runwatch", "read_sample_grid",
        "    except Exception:\n", "    except FileNotFoundError:\n", ("tests/tui/test_tui_runwatch.py",)),
    # the app's keys
    "n-and-N-swapped": Mutation("tui.state", "GenerateState.step_items", "if up:", "if not up:",
        (f"{GENERATE}::test_n_N_minus_home_and_end_reach_the_request_the_pixels_and_the_export",)),
    "minus-nudges-up": Mutation("tui.widgets.controls", "ClassControls.action_nudge",
        "direction * SHARE_STEP", "abs(direction) * SHARE_STEP",
        (f"{GENERATE}::test_n_N_minus_home_and_end_reach_the_request_the_pixels_and_the_export",)),
    "home-end-ignored": Mutation("tui.widgets.item_grid", "ItemGrid.action_select",
        "self.select(index % self.count)", "pass",
        (f"{GENERATE}::test_n_N_minus_home_and_end_reach_the_request_the_pixels_and_the_export",)),
    "monitor-o-ignored": Mutation("tui.screens.monitor", "MonitorScreen.attach",
        "self._tail(run_dir)", "pass",
        ("tests/tui/test_tui_monitor.py::test_o_follows_the_run_directory_typed_into_its_prompt",)),
}


class MutationError(RuntimeError):
    pass


def apply(name: str) -> None:
    """Swap the mutated code into the loaded function (the module is imported if need be)."""
    mutation = MUTATIONS[name]
    module = importlib.import_module(mutation.module)
    owner = module
    *path, attribute = mutation.function.split(".")
    for part in path:
        owner = getattr(owner, part)
    function = inspect.unwrap(owner.__dict__[attribute] if path else getattr(owner, attribute))
    source = textwrap.dedent(inspect.getsource(function))
    found = source.count(mutation.old)
    if found != 1:
        raise MutationError(f"{name}: {mutation.old!r} occurs {found} times in {mutation.module}.{mutation.function}")
    namespace = dict(vars(module))
    source = source.replace(mutation.old, mutation.new)
    exec(compile(source, f"<mutation {name} of {mutation.module}.{mutation.function}>", "exec"), namespace)
    function.__code__ = namespace[attribute].__code__


def pytest_configure(config) -> None:
    name = os.environ.get(ENV)
    if name:
        apply(name)


def run(name: str, first_only: bool = True) -> tuple[str, list[str]]:
    """(verdict, failed test ids) for one mutation: its tests run with it applied, up to the first
    failure unless first_only is False."""
    mutation = MUTATIONS[name]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "mutations", "-rf", "--no-header",
               "--continue-on-collection-errors", "-W", "ignore::pytest.PytestAssertRewriteWarning",
               *(["-x"] if first_only else []), *mutation.tests]
    path = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))  # where -p finds this file
    done = subprocess.run(command, cwd=REPO, env={**os.environ, ENV: name, "PYTHONPATH": path}, capture_output=True,
                          text=True)
    failed = re.findall(r"^FAILED (\S+)", done.stdout, re.MULTILINE)
    if done.returncode == 1 and failed:
        return "red", failed
    if done.returncode == 0:
        return "SURVIVED", []
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return f"error (pytest exit {done.returncode})", [" / ".join(lines[-3:])]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        for name, mutation in MUTATIONS.items():
            print(f"{name:40s} {mutation.module}.{mutation.function}")
        return 0
    first_only = "--every-failure" not in argv
    argv = [arg for arg in argv if arg != "--every-failure"]
    names = argv or list(MUTATIONS)
    unknown = [name for name in names if name not in MUTATIONS]
    if unknown:
        print(f"unknown mutation(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    survived = 0
    for name in names:
        verdict, failed = run(name, first_only)
        survived += verdict != "red"
        print(f"{name:40s} {verdict}: {', '.join(failed)}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
