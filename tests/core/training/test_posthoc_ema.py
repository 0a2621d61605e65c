"""Post-hoc EMA (core.training.posthoc_ema, EDM2): the profiles' maths, tracking them in the trainer,
their snapshots through a resume, reconstruction of any length after training, and the export command."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from support import REPO, make_fake_dataset

from core import checkpoint as ckpt
from core.checkpoint import CheckpointError, load_generator, read_checkpoint
from core.model.config import PRESETS, TrainConfig, as_dict
from core.model.denoiser import Denoiser
from core.training import export, posthoc_ema
from core.training.posthoc_ema import (
    MAX_SIGMA_REL,
    PosthocEMA,
    power_beta,
    profile_dot,
    reconstruct,
    sigma_rel_to_gamma,
    snapshot_of,
    solve_coefficients,
    write_snapshot,
)
from core.training.rundir import POSTHOC, list_checkpoints, list_snapshots
from core.training.state import TrainingError
from core.training.trainer import Trainer

TRACKED = (0.05, 0.10)


def config(**overrides) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 16, "checkpoint_every": 3, "log_every": 1, "sample_grid_per_class": 0, "seed": 0,
            "warmup_steps": 2, "posthoc_ema": TRACKED}
    return TrainConfig(**(base | overrides))


def relative_distance(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over every tensor of two state dicts."""
    num = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in b)
    den = sum(float((b[k].double() ** 2).sum()) for k in b)
    return math.sqrt(num / den)


def distance(a: dict, b: dict) -> float:
    return math.sqrt(sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in b))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run of 8 steps tracking 0.05 and 0.10 (checkpoints and snapshots at steps 3, 4, 7, 8),
    and its trainer. Read-only: copy the folder to change it."""
    root = tmp_path_factory.mktemp("posthoc")
    data = make_fake_dataset(root / "data")
    trainer = Trainer(root / "run", config(), preset="tiny", data_dir=data)
    trainer.run()
    return root / "run", trainer


# ----------------------------------------------------------------------------- the maths
def test_gamma_from_sigma_rel_is_edm2s_largest_root():
    """EDM2's values (sigma_rel 0.05 -> 16.97, 0.10 -> 6.94), each a root of their cubic and the
    largest real one, checked against the eigenvalues of its companion matrix."""
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.9722, abs=1e-4)
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.9372, abs=1e-4)
    for sigma_rel in (0.01, 0.05, 0.10, 0.15, 0.2, 0.28):
        gamma, u = sigma_rel_to_gamma(sigma_rel), sigma_rel ** -2
        companion = torch.tensor([[-7.0, -(16 - u), -(12 - u)], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
        roots = torch.linalg.eigvals(companion)
        largest_real = max(r.real.item() for r in roots if abs(r.imag.item()) < 1e-9)
        assert gamma == pytest.approx(largest_real, rel=1e-9)
        assert posthoc_ema.gamma_to_sigma_rel(gamma) == pytest.approx(sigma_rel, rel=1e-12)
        assert gamma > 0


@pytest.mark.parametrize("sigma_rel", [0.0, -0.1, MAX_SIGMA_REL, 0.3, float("nan"), float("inf")])
def test_sigma_rel_out_of_range_is_one_line(sigma_rel):
    with pytest.raises(ValueError) as info:
        sigma_rel_to_gamma(sigma_rel)
    assert "sigma_rel must be above 0 and below 0.2887" in str(info.value) and "\n" not in str(info.value)


def test_beta_schedule_copies_first_then_weights_steps_like_the_power_function():
    """beta_t = (1 - 1/t)^(gamma+1): step 1 is a copy, and folding steps 1..T in leaves step k the
    weight (k^(gamma+1) - (k-1)^(gamma+1)) / T^(gamma+1), the density integrated over (k-1, k]."""
    gamma = sigma_rel_to_gamma(0.10)
    assert power_beta(gamma, 1) == 0.0
    assert power_beta(gamma, 2) == pytest.approx(0.5 ** (gamma + 1))
    assert power_beta(gamma, 100) == pytest.approx(0.99 ** (gamma + 1))
    model = torch.nn.Linear(1, 1, bias=False)
    tracker = PosthocEMA(model, (0.10,))
    steps = 12
    for t in range(1, steps + 1):
        with torch.no_grad():
            model.weight.fill_(float(t))  # the weights of step t are t: the profile's mean step comes out
        tracker.update(model, t)
    weights = [(k ** (gamma + 1) - (k - 1) ** (gamma + 1)) / steps ** (gamma + 1) for k in range(1, steps + 1)]
    expected = sum(k * w for k, w in zip(range(1, steps + 1), weights))
    assert tracker.profiles[0].weight.item() == pytest.approx(expected, rel=1e-5)


def test_profile_dot_is_the_integral_of_the_two_densities():
    """<p_a, p_b> with p(t) = (gamma+1) t^gamma / T^(gamma+1) on [0, T], against a midpoint-rule integral."""
    grid = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000  # midpoints of [0, 1]

    def density(t, gamma, end):
        return torch.where(t <= end, (gamma + 1) * t ** gamma / end ** (gamma + 1), torch.zeros_like(t))

    for (t_a, g_a), (t_b, g_b) in [((0.6, 16.97), (1.0, 6.94)), ((1.0, 6.94), (0.6, 16.97)), ((0.8, 3.0), (0.8, 3.0))]:
        numeric = float((density(grid, g_a, t_a) * density(grid, g_b, t_b)).mean())
        closed = float(profile_dot(*(torch.tensor(v, dtype=torch.float64) for v in (t_a, g_a, t_b, g_b))))
        assert closed == pytest.approx(numeric, rel=1e-4)


def test_reconstruction_matches_a_profile_tracked_directly(tmp_path):
    """Weights on a known path, tracked at 0.05 and 0.10 with a snapshot every 40 steps: the
    reconstructions of 0.075 and 0.15 land within 2% of the 0.05-0.10 spread of profiles of those
    lengths tracked directly (a wrong inner product or schedule misses by far more)."""
    torch.manual_seed(0)
    preset = PRESETS["tiny"]
    model = Denoiser(preset.model, preset.diffusion)
    start = [p.detach().clone() for p in model.parameters()]
    drift = [(torch.randn_like(p), torch.randn_like(p)) for p in start]
    tracked, direct = PosthocEMA(model, TRACKED), PosthocEMA(model, (0.075, 0.15))
    for t in range(1, 401):
        with torch.no_grad():
            for p, p0, (a, b) in zip(model.parameters(), start, drift):
                p.copy_(p0 + math.sin(t / 60) * a + (t / 400) ** 2 * b + 0.05 * torch.randn_like(p0))
        tracked.update(model, t)
        direct.update(model, t)
        if t % 40 == 0:
            write_snapshot(tmp_path, snapshot_of({"step": t, "preset": "tiny", **ckpt.config_dicts(preset.model, preset.diffusion),
                                                  "train_config": as_dict(TrainConfig()), "posthoc_ema": tracked.state()}))
    spread = distance(tracked.profiles[0].state_dict(), tracked.profiles[1].state_dict())
    for sigma_rel, profile in zip(direct.sigma_rels, direct.profiles):
        rebuilt = reconstruct(tmp_path, sigma_rel)
        assert rebuilt.step == 400 and rebuilt.sources == 20
        assert distance(rebuilt.weights, profile.state_dict()) < 0.02 * spread, sigma_rel


# ----------------------------------------------------------------------------- the trainer and its files
def test_snapshots_are_written_with_every_checkpoint(trained_run):
    run, trainer = trained_run
    assert [p.name for p in list_snapshots(run)] == ["step-0000003.pt", "step-0000004.pt", "step-0000007.pt", "step-0000008.pt"]
    snapshot = torch.load(run / POSTHOC / "step-0000008.pt", weights_only=True)
    assert snapshot["kind"] == "fashion-posthoc-ema" and snapshot["format_version"] == 1 and snapshot["step"] == 8
    assert snapshot["sigma_rels"] == list(TRACKED) and snapshot["gammas"] == pytest.approx([16.9722, 6.9372], abs=1e-4)
    assert snapshot["preset"] == "tiny" and snapshot["train_config"]["posthoc_ema"] == list(TRACKED)
    assert {"model_config", "diffusion_config"} <= set(snapshot)
    for weights, profile in zip(snapshot["profiles"], trainer.posthoc.profiles):
        for key, value in profile.state_dict().items():
            assert weights[key].dtype == torch.float32 and torch.equal(weights[key], value), key
    state = read_checkpoint(list_checkpoints(run)[-1])
    assert state["posthoc_ema"]["sigma_rels"] == list(TRACKED)
    # the two lengths are different averages of the same run, and neither is the classic EMA
    a, b = (p.state_dict() for p in trainer.posthoc.profiles)
    assert distance(a, b) > 0 and distance(a, trainer.ema.state_dict()) > 0


def test_reconstructing_a_tracked_length_gives_its_profile_and_between_gives_between(trained_run):
    run, trainer = trained_run
    for sigma_rel, profile in zip(TRACKED, trainer.posthoc.profiles):
        rebuilt = reconstruct(run, sigma_rel)
        assert rebuilt.step == 8 and rebuilt.sources == 8
        assert relative_distance(rebuilt.weights, profile.state_dict()) < 1e-4, sigma_rel
    short, long = (p.state_dict() for p in trainer.posthoc.profiles)
    between = reconstruct(run, 0.075).weights
    apart = distance(short, long)
    assert distance(between, short) < apart and distance(between, long) < apart
    # the combination's coefficients sum to 1 (EDM2 rescales the least-squares solution so), so a
    # constant stays that constant
    gammas = [sigma_rel_to_gamma(s) for s in TRACKED] * 4
    coefficients = solve_coefficients([3, 3, 4, 4, 7, 7, 8, 8], gammas, 8, sigma_rel_to_gamma(0.075))
    assert float(coefficients.sum()) == pytest.approx(1.0, abs=1e-12) and float(coefficients.abs().sum()) > 1.0
    # at an earlier snapshot: the profile as it was there (steps 3 and 4 only)
    snapshot = torch.load(run / POSTHOC / "step-0000004.pt", weights_only=True)
    at_step_5 = reconstruct(run, 0.10, step=5)
    assert at_step_5.step == 4 and at_step_5.sources == 4
    assert relative_distance(at_step_5.weights, snapshot["profiles"][1]) < 1e-4


def test_reconstruction_refuses_with_one_line(trained_run, tmp_path):
    run, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cases = [
        (lambda: reconstruct(copy, 0.3), "sigma_rel must be above 0"),
        (lambda: reconstruct(copy, 0.1, step=2), "no post-hoc EMA snapshot at or before step 2"),
        (lambda: reconstruct(tmp_path / "nothing", 0.1), "no post-hoc EMA snapshots in"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)
    (copy / POSTHOC / "step-0000004.pt").write_bytes(b"not a snapshot")
    with pytest.raises(CheckpointError) as info:
        reconstruct(copy, 0.1)
    assert "step-0000004.pt is not a usable checkpoint" in str(info.value) and "\n" not in str(info.value)


def test_a_resumed_run_ends_with_the_profiles_of_an_uninterrupted_one(trained_run, tmp_path, fake_data_dir):
    """Stopped at step 5 and resumed WITHOUT repeating posthoc_ema: it keeps tracking the same
    lengths and ends with the straight run's profiles and snapshot."""
    straight_run, straight = trained_run

    def stop_at_5(event):
        if event.kind == "log" and event.step == 5:
            first.stop("test")

    first = Trainer(tmp_path / "run", config(), preset="tiny", data_dir=fake_data_dir, on_event=stop_at_5)
    assert first.run()["step"] == 5
    resumed = Trainer(tmp_path / "run", config(posthoc_ema=()), data_dir=fake_data_dir, resume=True)
    assert resumed.train_config.posthoc_ema == TRACKED and resumed.posthoc.sigma_rels == TRACKED
    assert resumed.run()["step"] == 8
    for mine, theirs in zip(resumed.posthoc.profiles, straight.posthoc.profiles):
        for (key, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), key
    # the resumed run checkpoints at 5 (the stop) and 8 (3 steps on, the epoch's end)
    assert [p.name for p in list_snapshots(tmp_path / "run")] == ["step-0000003.pt", "step-0000004.pt", "step-0000005.pt",
                                                                  "step-0000008.pt"]
    mine = torch.load(tmp_path / "run" / POSTHOC / "step-0000008.pt", weights_only=True)["profiles"]
    theirs = torch.load(straight_run / POSTHOC / "step-0000008.pt", weights_only=True)["profiles"]
    for a, b in zip(mine, theirs):
        assert relative_distance(a, b) < 1e-5


def test_resume_deletes_snapshots_newer_than_the_checkpoint_it_resumes(trained_run, tmp_path, fake_data_dir):
    """The newest checkpoint is corrupt, so the run resumes at step 7: the step-8 snapshot describes a
    lost future and is gone before the first step (then written again, the same, at step 8)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    list_checkpoints(run)[-1].write_bytes(b"torn")
    seen = []
    resumed = Trainer(run, config(), data_dir=fake_data_dir, resume=True,
                      on_event=lambda e: seen.append([p.name for p in list_snapshots(run)]) if e.kind == "start" else None)
    assert resumed.step == 7
    resumed.run()
    assert seen == [["step-0000003.pt", "step-0000004.pt", "step-0000007.pt"]]
    assert [p.name for p in list_snapshots(run)][-1] == "step-0000008.pt"


def test_resume_refuses_other_lengths_and_profiles_that_start_mid_run(trained_run, tmp_path, fake_data_dir):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    with pytest.raises(TrainingError) as info:
        Trainer(run, config(posthoc_ema=(0.05, 0.2)), data_dir=fake_data_dir, resume=True)
    assert "this run tracks 0.05,0.1" in str(info.value) and "\n" not in str(info.value)
    assert Trainer(run, config(posthoc_ema=(0.10, 0.05)), data_dir=fake_data_dir, resume=True).posthoc.sigma_rels == TRACKED
    plain = tmp_path / "plain"
    Trainer(plain, config(posthoc_ema=(), max_steps=2), preset="tiny", data_dir=fake_data_dir).run()
    with pytest.raises(TrainingError) as info:
        Trainer(plain, config(), data_dir=fake_data_dir, resume=True)
    assert "was not tracking post-hoc EMA profiles" in str(info.value)


def test_off_by_default_writes_nothing_and_adds_no_key(tmp_path, fake_data_dir):
    assert TrainConfig().posthoc_ema == ()
    trainer = Trainer(tmp_path / "run", config(posthoc_ema=(), max_steps=4), preset="tiny", data_dir=fake_data_dir)
    trainer.run()
    assert not (tmp_path / "run" / POSTHOC).exists() and trainer.posthoc.profiles == []
    assert all("posthoc_ema" not in read_checkpoint(p) for p in list_checkpoints(tmp_path / "run"))


def test_train_cli_flag_tracks_the_profiles_and_refuses_bad_values(tmp_path, fake_data_dir, monkeypatch, capsys):
    import train_cli

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own Ctrl-C handling
    monkeypatch.setenv("COLUMNS", "10000")
    base = ["--data-dir", fake_data_dir, "--preset", "tiny", "--batch-size", "16", "--epochs", "1", "--device", "cpu",
            "--no-progress", "--quality-per-class", "0"]
    for value, words in [("0.3", "sigma_rel must be above 0 and below 0.2887"), ("0.05,x", "'x' in '0.05,x' is not a number"),
                         ("0.1,0.1", "must differ"), ("0", "sigma_rel must be above 0")]:
        assert train_cli.main([str(a) for a in [*base, "--run-dir", tmp_path / "bad", "--posthoc-ema", value]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fashion-train: error: --posthoc-ema: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
    assert train_cli.main([str(a) for a in [*base, "--run-dir", tmp_path / "run", "--posthoc-ema", "0.10,0.05"]]) == 0
    assert [p.name for p in list_snapshots(tmp_path / "run")] == ["step-0000004.pt"]
    assert torch.load(tmp_path / "run" / POSTHOC / "step-0000004.pt", weights_only=True)["sigma_rels"] == [0.10, 0.05]


# ----------------------------------------------------------------------------- the export command
def run_export(capsys, *argv) -> tuple[int, str, str]:
    """export.main(argv) in this process -> (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = export.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_writes_a_loadable_generator_from_the_reconstruction_or_the_ema(trained_run, tmp_path, capsys):
    run, _ = trained_run
    out = tmp_path / "posthoc.pt"
    code, said, _ = run_export(capsys, run, "--out", out, "--sigma-rel", "0.075")
    assert code == 0 and "post-hoc EMA sigma_rel 0.075 at step 8" in said
    generator = load_generator(out)
    data = read_checkpoint(out)
    assert data["posthoc_sigma_rel"] == 0.075 and data["step"] == 8 and generator.info["preset"] == "tiny"
    assert all(v.dtype == torch.float16 for v in data["ema"].values())
    rebuilt = reconstruct(run, 0.075).weights
    assert relative_distance(generator.denoiser.state_dict(), rebuilt) < 1e-3  # 16-bit rounding

    out32 = tmp_path / "ema.pt"
    assert run_export(capsys, run, "--out", out32, "--fp32", "--step", 6)[0] == 0
    data = read_checkpoint(out32)
    classic = read_checkpoint(run / "checkpoints" / "step-0000004.pt")["ema"]
    assert "posthoc_sigma_rel" not in data and data["step"] == 4
    assert all(torch.equal(data["ema"][k], classic[k]) for k in classic)
    load_generator(out32)


@pytest.mark.parametrize("argv, words", [
    (["--sigma-rel", "0.5"], "sigma_rel must be above 0"),
    (["--sigma-rel", "0.1", "--step", "2"], "no post-hoc EMA snapshot at or before step 2"),
    (["--step", "2"], "no checkpoint at or before step 2"),
    (["--step", "0"], "--step must be at least 1"),
    (["--sigma-rel", "wide"], "argument --sigma-rel: invalid float value"),
])
def test_export_refuses_bad_input_with_one_line_and_writes_nothing(trained_run, tmp_path, capsys, argv, words):
    out = tmp_path / "out.pt"
    code, _, err = run_export(capsys, trained_run[0], "--out", out, *argv)
    assert code == 2
    assert words in err and err.count("\n") == 1 and err.startswith("python -m core.training.export: error: ")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_refuses_a_run_without_snapshots_and_a_corrupt_snapshot(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    shutil.rmtree(run / POSTHOC)
    code, _, err = run_export(capsys, run, "--out", tmp_path / "a.pt", "--sigma-rel", 0.1)
    assert code == 2 and "no post-hoc EMA snapshots in" in err and err.count("\n") == 1
    shutil.copytree(trained_run[0] / POSTHOC, run / POSTHOC)
    (run / POSTHOC / "step-0000007.pt").write_bytes(b"\x00" * 64)
    code, _, err = run_export(capsys, run, "--out", tmp_path / "a.pt", "--sigma-rel", 0.1)
    assert code == 2 and "step-0000007.pt is not a usable checkpoint" in err and err.count("\n") == 1
    assert not (tmp_path / "a.pt").exists()


def test_export_runs_as_a_module(trained_run, tmp_path):
    out = tmp_path / "m.pt"
    done = subprocess.run([sys.executable, "-m", "core.training.export", str(trained_run[0]), "--out", str(out),
                           "--sigma-rel", "0.1"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert read_checkpoint(out)["posthoc_sigma_rel"] == 0.1
    load_generator(out)
