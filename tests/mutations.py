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
POSTHOC = "tests/core/training/test_posthoc_ema.py"
GUIDANCE = "tests/core/model/test_guidance_input.py"
STUDENT_SAMPLER = "tests/core/sampling/test_student.py"
STUDENT_APP = "tests/tui/test_tui_student.py"
DISTILL = "tests/core/training/test_distill.py"
FIT = "tests/tui/test_tui_fit.py"
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
    # speed choices by measurement (core.autotune, core.training.step)
    "autotune-bf16-on-any-gain": Mutation("core.autotune", "time_precisions",
        "if fp32 / bf16 >= KEEP_BF16_AT", "if fp32 / bf16 >= 1.0",
        ("tests/core/test_autotune.py::test_bf16_is_kept_only_where_it_is_clearly_faster",)),
    "autotune-trusts-foreign-cache": Mutation("core.autotune", "cached",
        'if not isinstance(entry, dict) or entry.get("machine") != machine or entry.get("work") != work:',
        "if not isinstance(entry, dict):",
        ("tests/core/test_autotune.py::test_a_foreign_stale_or_tampered_entry_is_never_trusted",)),
    "autotune-never-cached": Mutation("core.autotune", "measured_precision",
        "decision = PrecisionDecision.from_dict(cached(kind, machine, work))", "decision = None",
        ("tests/core/test_autotune.py::test_a_decision_is_measured_once_then_read_back",)),
    "compile-kept-however-slow": Mutation("core.training.step", "verdict",
        "faster = compiled * KEEP_COMPILED_AT <= eager", "faster = True",
        ("tests/core/training/test_step.py::test_auto_keeps_the_compiled_step_only_where_it_measured_faster",
         "tests/core/training/test_step.py::test_verdict_counts_the_compile_against_the_run_left")),
    "compile-steps-left-of-every-process": Mutation("core.training.step", "StepRunner.__init__",
        "images_to_train // max(1, config.batch_size * world_size)", "images_to_train // max(1, config.batch_size)",
        ("tests/core/training/test_step.py::test_the_run_left_is_counted_in_each_processs_steps",)),
    "compile-trial-forgotten-on-resume": Mutation("core.training.trainer", "Trainer._compile_measured",
        "if state is not None:", "if False:",
        ("tests/core/training/test_step.py::test_a_resume_and_a_later_run_reuse_the_trial",)),
    # the student (core.training.distill, core.training.pairs) and its sampler
    "student-starts-off-its-teacher": Mutation("core.training.distill", "student_of",
        "missing, unexpected = student.load_state_dict(teacher.denoiser.state_dict(), strict=False)",
        "missing, unexpected = student.load_state_dict(teacher.denoiser.state_dict(), strict=False); "
        "torch.nn.init.normal_(student.guided.model.guidance_embedding.mlp[2].weight, std=0.01)",
        (f"{GUIDANCE}::test_a_fresh_student_is_exactly_its_teachers_conditional_model_at_any_g",)),
    "student-takes-the-views-g-only": Mutation("core.model.denoiser", "Denoiser._student",
        "g = per_item if per_item is not None else", "g =", (f"{GUIDANCE}::test_a_student_takes_each_items_g_and_one_row_per_item",)),
    "student-called-through-cfg": Mutation("core.model.denoiser", "Denoiser.forward",
        "if self.guidance_input:", "if False:", (f"{GUIDANCE}::test_a_student_takes_each_items_g_and_one_row_per_item",
                                                f"{STUDENT_SAMPLER}::test_k_steps_make_k_calls_at_the_tables_timesteps_one_row_per_item")),
    "teacher-ignores-each-items-g": Mutation("core.model.denoiser", "Denoiser._rows_guided",
        "g = self.guided.guidance if per_item is None else per_item.float().view(-1, 1, 1, 1)", "g = self.guided.guidance",
        (f"{GUIDANCE}::test_a_teacher_takes_each_items_g_as_cfg_at_that_g", f"{DISTILL}::test_a_pair_is_the_teachers_item_from_its_seed")),
    "student-grid-off-the-table": Mutation("core.sampling.samplers", "eval_steps_for",
        "grid = STUDENT_TIMESTEPS[steps]", "grid = [t - 1 for t in STUDENT_TIMESTEPS[steps]]",
        (f"{STUDENT_SAMPLER}::test_k_steps_make_k_calls_at_the_tables_timesteps_one_row_per_item",)),
    "student-steps-past-its-x0": Mutation("core.sampling.dpm_solver", "DPMSolverModule.generator",
        "if last and self.x0_last:", "if False:", (f"{STUDENT_SAMPLER}::test_each_step_is_ddim_on_the_clamped_x0_and_the_last_returns_x0",)),
    "student-second-order": Mutation("core.sampling.samplers", "make_sampler",
        "same_model=lambda s, t: False, x0_last=True", "x0_last=True",
        (f"{STUDENT_SAMPLER}::test_each_step_is_ddim_on_the_clamped_x0_and_the_last_returns_x0",)),
    "student-autoguidance-let-through": Mutation("core.sampling.request", "SampleRequest._validate_student",
        "if self.autoguidance:", "if False:", (f"{STUDENT_SAMPLER}::test_what_the_student_did_not_learn_is_refused_in_one_line",)),
    "recipe-drops-the-student": Mutation("core.sampling.recipes", "recipe",
        '("student", request.sampler == STUDENT, student)', '("student", False, student)',
        (f"{STUDENT_SAMPLER}::test_the_recipe_names_the_student_and_reproduces_its_pixels",)),
    "distill-noise-not-on-the-path": Mutation("core.training.distill", "DistillObjective.forward",
        "eps = (x_T - self.alpha[last] * x0) / self.sigma[last]", "eps = x_T",
        (f"{DISTILL}::test_the_objective_noises_x0_along_the_path_from_x_T",)),
    "distill-x0-target-is-v": Mutation("core.training.distill", "DistillObjective.forward",
        "x0_hat = self.predictor.predict_x0(out.prediction.float(), x_t, t)", "x0_hat = out.prediction.float()",
        (f"{DISTILL}::test_the_objective_noises_x0_along_the_path_from_x_T",)),
    "distill-rollout-never": Mutation("core.training.distill", "DistillObjective.forward",
        "if rolled:", "if False:",
        (f"{DISTILL}::test_rollout_items_start_where_the_students_own_first_call_puts_them",)),
    "distill-rollout-on-the-path": Mutation("core.training.distill", "DistillObjective.rollout",
        "c = self.predictor.predict_x0(first.prediction.float(), start, at_T).clamp(-1, 1)",
        "c = self.predictor.predict_x0(first.prediction.float(), start, at_T)",
        (f"{DISTILL}::test_rollout_items_start_where_the_students_own_first_call_puts_them",)),
    "default-never-the-student": Mutation("core.sampling.request", "prefer_student",
        'if has_student:', "if False:",
        (f"{STUDENT_SAMPLER}::test_a_request_naming_no_sampler_goes_to_the_student_where_it_can_draw_it",
         "tests/tui/test_cli.py::test_generate_draws_with_the_student_unless_a_sampler_is_named_or_it_cannot")),
    "default-student-whatever-is-asked": Mutation("core.sampling.request", "prefer_student",
        "except SampleRequestError:\n            pass", "except SampleRequestError:\n            return replace(request, sampler=STUDENT)",
        (f"{STUDENT_SAMPLER}::test_what_the_student_refuses_keeps_the_teacher_when_no_sampler_is_named",)),
    "app-never-starts-on-the-student": Mutation("tui.screens.generate", "GenerateScreen.model_loaded",
        "self.state.use_sampler(STUDENT)", "pass",
        (f"{STUDENT_APP}::test_with_no_sampler_asked_for_the_app_starts_on_the_student_where_one_is_loaded",)),
    "distill-init-ignored": Mutation("core.training.distill", "StudentTrainer._new_model",
        "return self.init if self.init is not None else student_of(self.teacher)", "return student_of(self.teacher)",
        (f"{DISTILL}::test_a_distillation_goes_on_from_a_student_of_its_teacher",)),
    "distill-init-of-any-teacher": Mutation("core.training.distill", "_student_to_continue",
        'record.get("teacher_hash") != teacher.hash', "False",
        (f"{DISTILL}::test_a_distillation_goes_on_from_a_student_of_its_teacher",)),
    "pairs-drawn-again-every-time": Mutation("core.training.pairs", "draw_missing",
        "and read_shard(shard_path(run_dir, k), teacher.hash, sizes[k]) is None]", "]",
        (f"{DISTILL}::test_a_resumed_drawing_draws_only_the_missing_shards",)),
    # training
    "pause-returns-at-once": Mutation("core.training.trainer", "Trainer._wait_while_paused",
        "if self._resume_allowed.is_set():", "if True:",
        ("tests/core/training/test_pause_and_resume.py", "tests/tui/test_tui_monitor.py")),
    "resume-skips-ema": Mutation("core.training.state", "restore",
        'ema.load_state_dict(state["ema"])', "pass", ("tests/core/training/test_pause_and_resume.py",)),
    # post-hoc EMA (core.training.posthoc_ema): its maths, the trainer's tracking and files, the export command
    "posthoc-gamma-cubic-off": Mutation("core.training.posthoc_ema", "sigma_rel_to_gamma",
        "* gamma + 12 - u", "* gamma + 13 - u", (f"{POSTHOC}::test_gamma_from_sigma_rel_is_edm2s_largest_root",)),
    "posthoc-sigma-rel-unbounded": Mutation("core.training.posthoc_ema", "check_sigma_rel",
        "if not 0 < value < MAX_SIGMA_REL:", "if not 0 < value:",
        (f"{POSTHOC}::test_sigma_rel_out_of_range_is_one_line", f"{POSTHOC}::test_train_cli_flag_tracks_the_profiles_and_refuses_bad_values")),
    "posthoc-beta-exponent-gamma": Mutation("core.training.posthoc_ema", "power_beta",
        "** (gamma + 1.0)", "** gamma",
        (f"{POSTHOC}::test_beta_schedule_copies_first_then_weights_steps_like_the_power_function",
         f"{POSTHOC}::test_reconstruction_matches_a_profile_tracked_directly")),
    "posthoc-dot-exponents-swapped": Mutation("core.training.posthoc_ema", "profile_dot",
        "torch.where(t_a < t_b, gamma_b, -gamma_a)", "torch.where(t_a < t_b, gamma_a, -gamma_b)",
        (f"{POSTHOC}::test_profile_dot_is_the_integral_of_the_two_densities",
         f"{POSTHOC}::test_reconstruction_matches_a_profile_tracked_directly")),
    "posthoc-dot-denominator-off": Mutation("core.training.posthoc_ema", "profile_dot",
        "(gamma_a + gamma_b + 1) * t_max", "(gamma_a + gamma_b + 2) * t_max",
        (f"{POSTHOC}::test_profile_dot_is_the_integral_of_the_two_densities",)),
    "posthoc-coefficients-not-rescaled": Mutation("core.training.posthoc_ema", "solve_coefficients",
        "return x / x.sum()", "return x",
        (f"{POSTHOC}::test_reconstructing_a_tracked_length_gives_its_profile_and_between_gives_between",)),
    "posthoc-reconstructs-at-first-snapshot": Mutation("core.training.posthoc_ema", "reconstruct",
        'newest["step"], target_gamma)', 'snapshots[0]["step"], target_gamma)',
        (f"{POSTHOC}::test_reconstructing_a_tracked_length_gives_its_profile_and_between_gives_between",)),
    "posthoc-step-ignored": Mutation("core.training.posthoc_ema", "reconstruct",
        "paths = [path for path in paths if step_of(path) <= step]", "paths = paths",
        (f"{POSTHOC}::test_reconstruction_refuses_with_one_line", f"{POSTHOC}::test_export_refuses_bad_input_with_one_line_and_writes_nothing")),
    "posthoc-snapshot-read-unchecked": Mutation("core.training.posthoc_ema", "reconstruct",
        "snapshots = [read_snapshot(path) for path in paths]", "snapshots = [torch.load(path, weights_only=True) for path in paths]",
        (f"{POSTHOC}::test_reconstruction_refuses_with_one_line",
         f"{POSTHOC}::test_export_refuses_a_run_without_snapshots_and_a_corrupt_snapshot")),
    "posthoc-no-snapshot-with-checkpoint": Mutation("core.training.state", "write_checkpoint",
        'if "posthoc_ema" in state and step > 0:', "if False:",
        (f"{POSTHOC}::test_snapshots_are_written_with_every_checkpoint", f"{POSTHOC}::test_train_cli_flag_tracks_the_profiles_and_refuses_bad_values")),
    "posthoc-resume-skips-profiles": Mutation("core.training.state", "restore",
        'posthoc.load_state(state.get("posthoc_ema", {}))', "pass",
        (f"{POSTHOC}::test_a_resumed_run_ends_with_the_profiles_of_an_uninterrupted_one",)),
    "posthoc-resume-forgets-lengths": Mutation("core.training.state", "tracked_profiles",
        "return replace(train_config, posthoc_ema=tracked)", "return train_config",
        (f"{POSTHOC}::test_a_resumed_run_ends_with_the_profiles_of_an_uninterrupted_one",)),
    "posthoc-resume-takes-any-lengths": Mutation("core.training.state", "tracked_profiles",
        "if not asked or sorted(asked) == sorted(tracked):", "if True:",
        (f"{POSTHOC}::test_resume_refuses_other_lengths_and_profiles_that_start_mid_run",)),
    "posthoc-resume-keeps-lost-snapshots": Mutation("core.training.posthoc_ema", "PosthocEMA.forget_after",
        "return remove_snapshots_after(run_dir, step) if self.tracking else []", "return []",
        (f"{POSTHOC}::test_resume_deletes_snapshots_newer_than_the_checkpoint_it_resumes",)),
    "posthoc-key-when-off": Mutation("core.training.state", "capture",
        "if posthoc is not None and posthoc.tracking else {}", "if posthoc is not None else {}",
        (f"{POSTHOC}::test_off_by_default_writes_nothing_and_adds_no_key",)),
    "posthoc-flag-dropped": Mutation("train_cli", "data_trainer",
        "posthoc_ema=posthoc_sigma_rels(args.posthoc_ema)", "posthoc_ema=()",
        (f"{POSTHOC}::test_train_cli_flag_tracks_the_profiles_and_refuses_bad_values",)),
    "posthoc-export-drops-sigma-rel": Mutation("core.checkpoint", "export_generator",
        '"posthoc_sigma_rel", "distill")', '"posthoc_sigma_rel_dropped", "distill")',
        (f"{POSTHOC}::test_export_writes_a_loadable_generator_from_the_reconstruction_or_the_ema",)),
    "posthoc-export-errors-unguarded": Mutation("core.training.export", "main",
        "except (ValueError, OSError) as error:", "except OSError as error:",
        (f"{POSTHOC}::test_export_refuses_bad_input_with_one_line_and_writes_nothing",
         f"{POSTHOC}::test_export_refuses_a_run_without_snapshots_and_a_corrupt_snapshot")),
    # the quality probe scores its items against the classes next to the ones it asked for
    "probe-classes-shifted": Mutation("core.evaluation.probe", "QualityProbe.score",
        "targets = torch.arange(NUM_CLASSES).repeat_interleave(self.per_class)",
        "targets = (torch.arange(NUM_CLASSES) + 1).remainder(NUM_CLASSES).repeat_interleave(self.per_class)",
        ("tests/core/training/test_quality_probe.py::test_the_probes_accuracy_is_the_evaluators_on_the_same_items",)),
    # TensorBoard event files (core.training.tensorboard)
    "tensorboard-resume-duplicates-steps": Mutation("core.training.tensorboard", "TensorBoardLog._open",
        "purge_step=step + 1 if step else None", "purge_step=None",
        ("tests/core/training/test_tensorboard.py::test_a_resumed_run_appends_to_the_folder_and_shows_each_step_once",)),
    "tensorboard-missing-unchecked": Mutation("train_cli", "check_args",
        "if problem := missing():", "if problem := None:",
        ("tests/core/training/test_tensorboard.py::test_without_the_package_the_flag_stops_the_run_before_it_starts",)),
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
    # lines that must fit at 80x24 (tests/tui/test_tui_fit.py)
    "info-line-never-shortened": Mutation("tui.screens.generate", "GenerateScreen._update_info",
        "line.update(next(fitting, forms[-1]))", "line.update(forms[0])",
        (f"{FIT}::test_vary_edit_and_switch_on_the_info_line_and_every_footer_fit",)),
    "footer-cancel-while-zoomed": Mutation("tui.screens.generate", "GenerateScreen.check_action",
        "return self.sampling is not None", "return self.sampling is not None or self.grid.zoomed",
        (f"{FIT}::test_vary_edit_and_switch_on_the_info_line_and_every_footer_fit",)),
    "zoom-caption-cut-to-the-item": Mutation("tui.widgets.item_grid", "ItemGrid._tiles_and_labels",
        "max(tile.columns, self._usable_width())", "tile.columns",
        (f"{FIT}::test_vary_edit_and_switch_on_the_info_line_and_every_footer_fit",)),
    "chart-legend-on-one-row": Mutation("tui.widgets.curve_chart", "CurveChart.legend",
        "if rows and rows[-1].cell_len + 2 + entry.cell_len <= width:", "if rows:",
        (f"{FIT}::test_the_compare_view_shows_the_apps_run_names_and_wraps_its_legend",)),
    "chart-axis-labels-from-plotext": Mutation("tui.widgets.curve_chart", "CurveChart.render",
        "if values and (self.y_from_zero is not None or flat):", "if False:",
        (f"{FIT}::test_a_steady_machine_and_a_flat_accuracy_get_round_axis_labels",)),
    # the student in the app: s reaches it without one loaded, its refusals let a key through, its exports forget it
    "student-in-the-cycle-without-one": Mutation("tui.state", "GenerateState.toggle_sampler",
        "if REQUEST_SAMPLERS[position] != STUDENT or self.student_loaded:", "if True:",
        (f"{STUDENT_APP}::test_s_reaches_the_student_only_where_one_is_loaded",
         "tests/tui/test_tui_state.py::test_the_student_joins_the_cycle_only_where_one_is_loaded_and_holds_what_it_learned")),
    "student-refusals-let-through": Mutation("tui.state", "GenerateState.teacher_only", "if self.sampler == STUDENT:", "if False:",
        (f"{STUDENT_APP}::test_the_keys_the_student_refuses_say_why_in_one_line_and_change_nothing",)),
    "student-export-forgets-the-student": Mutation("tui.jobs", "export", "student=generator.student_identity())", "student=None)",
        (f"{STUDENT_APP}::test_a_student_recipe_comes_back_from_its_png_and_s_leaves_it",)),
    # the loss weighting over noise levels is applied twice (w^2), or min-SNR loses its cap, or attention levels are ignored
    "loss-weights-squared": Mutation("core.model.diffusion", "DiffusionObjective.forward",
        "prediction, target = prediction * root, target * root",
        "prediction, target = prediction * root * root, target * root * root", ("tests/core/model/test_loss_weighting.py",)),
    "min-snr-uncapped": Mutation("core.model.diffusion", "loss_weights",
        "weight = snr.clamp(max=config.min_snr_gamma) / per_x0", "weight = snr / per_x0",
        ("tests/core/model/test_loss_weighting.py",)),
    "attention-levels-ignored": Mutation("core.model.unet", "level_attention",
        "if level in config.attention_levels else", "if False else", ("tests/core/model/test_loss_weighting.py",)),
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
