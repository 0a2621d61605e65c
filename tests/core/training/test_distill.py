"""Distilling a student from the test model: the teacher's pairs (shards, reproducible from their seeds,
only missing ones drawn again), the objective's path, a loss that falls, a run that resumes, and
`fashion-train distill` end to end."""

import json

import pytest
import torch

from core.checkpoint import load_generator, load_student, read_checkpoint
from core.model.config import DistillConfig, TrainConfig
from core.model.unet import GUIDANCE_KEY
from core.sampling.limits import STUDENT, STUDENT_GUIDANCE_RANGE
from core.sampling.request import SampleRequest
from core.sampling.samplers import ItemNoise, sample
from core.training import pairs
from core.training.distill import DistillObjective, StudentTrainer, student_of
from core.training.rundir import QUALITY, list_checkpoints
from core.training.state import TrainingError
from support import TEST_MODEL

PAIRS = DistillConfig(pairs=40, shard_size=16, perceptual=0.0)


@pytest.fixture(scope="module")
def teacher():
    return load_generator(TEST_MODEL)


@pytest.fixture(scope="module")
def drawn(teacher, tmp_path_factory):
    """A run directory holding the 40 pairs in shards of 16, 16 and 8."""
    run = tmp_path_factory.mktemp("pairs") / "run"
    assert pairs.draw_missing(run, teacher, PAIRS.pairs, PAIRS.shard_size, "fp32") == 3
    return run


def config(**overrides) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, lr=2e-4, warmup_steps=2, checkpoint_every=100, log_every=1,
                sample_grid_per_class=0, seed=0, precision="fp32")
    return TrainConfig(**(base | overrides))


def test_a_shard_holds_its_pairs(drawn):
    data = read_checkpoint(pairs.shard_path(drawn, 2), pairs.KIND, pairs.FORMAT_VERSION)
    assert data["x0"].shape == (8, 1, 28, 28) and data["x0"].dtype == torch.float16
    assert data["seeds"].tolist() == list(range(pairs.PAIR_SEED_BASE + 32, pairs.PAIR_SEED_BASE + 40))
    assert data["class_weights"].shape == (8, 10) and data["guidance"].shape == (8,)
    assert float(data["x0"].abs().max()) <= 1


def test_the_conditions_mix_classes_and_spread_g():
    weights, guidance = pairs.draw_conditions(0, 4000)
    picked = (weights > 0).sum(dim=1)
    assert set(picked.tolist()) == {1, 2} and (picked == 1).float().mean().item() == pytest.approx(pairs.SINGLE_SHARE, abs=0.03)
    first = weights[picked == 2].max(dim=1).values
    assert torch.allclose(weights.sum(dim=1), torch.ones(4000)) and first.max() <= 0.8 + 1e-6 and first.min() >= 0.5 - 1e-6
    lo, hi = STUDENT_GUIDANCE_RANGE
    assert guidance.min() >= lo and guidance.max() <= hi and (guidance > 3).any() and (guidance < 0.5).any()
    near = ((guidance - 1.75).abs() <= 0.5).float().mean().item()
    assert near > 0.5  # half drawn near the default, and an eighth of the rest lands there too
    assert torch.equal(pairs.draw_conditions(0, 4000)[0], weights)  # the shard's draws are its own


def test_a_pair_is_the_teachers_item_from_its_seed(drawn, teacher):
    data = read_checkpoint(pairs.shard_path(drawn, 1), pairs.KIND, pairs.FORMAT_VERSION)
    for i in (0, 5):
        seed, row, g = int(data["seeds"][i]), data["class_weights"][i], float(data["guidance"][i])
        again = sample(teacher, SampleRequest(row.tolist(), n=1, sampler="dpm", seed=seed, guidance=g, black_level=0,
                                              precision="fp32"))
        assert torch.allclose(again[0], data["x0"][i].float(), atol=2e-3), i
    loaded = pairs.load_pairs(drawn, teacher.hash, PAIRS.pairs, PAIRS.shard_size)
    assert len(loaded) == 40 and torch.equal(loaded.x_T[16 + 5], ItemNoise(int(data["seeds"][5]), 1, False)((1, 1, 28, 28))[0])


def test_a_resumed_drawing_draws_only_the_missing_shards(drawn, teacher, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(drawn, run)
    kept = {k: pairs.shard_path(run, k).stat().st_mtime_ns for k in (0, 2)}
    pairs.shard_path(run, 1).unlink()
    assert pairs.draw_missing(run, teacher, PAIRS.pairs, PAIRS.shard_size, "fp32") == 1
    assert {k: pairs.shard_path(run, k).stat().st_mtime_ns for k in (0, 2)} == kept
    assert torch.allclose(read_checkpoint(pairs.shard_path(run, 1), pairs.KIND)["x0"].float(),
                          read_checkpoint(pairs.shard_path(drawn, 1), pairs.KIND)["x0"].float(), atol=2e-3)
    assert pairs.draw_missing(run, teacher, PAIRS.pairs, PAIRS.shard_size, "fp32") == 0
    with pytest.raises(TrainingError, match="holds 16 pairs where this run expects 8"):  # another --pairs
        pairs.draw_missing(run, teacher, 24, PAIRS.shard_size)
    with pytest.raises(TrainingError, match="pairs of teacher"):
        pairs.draw_missing(run, load_generator(TEST_MODEL.with_name("test-model-guide.pt")), PAIRS.pairs, PAIRS.shard_size)


def test_the_objective_noises_x0_along_the_path_from_x_T(teacher, monkeypatch):
    """x_t = a_t x0* + s_t eps_T with eps_T = (x_T - a_T x0*) / s_T: at t = T it is x_T itself, and
    the student is asked for x0* there."""
    seen = {}

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student = student_of(teacher)

        def forward(self, x, t, c):
            seen.update(x=x, t=t, c=c, out=self.student(x, t, c))
            return seen["out"]

    objective = DistillObjective(Recorder(), teacher.diffusion_config, PAIRS)
    monkeypatch.setattr(objective, "timesteps", lambda batch, device: torch.tensor([999, 400]))
    x_T, x0 = torch.randn(2, 1, 28, 28), torch.rand(2, 1, 28, 28) * 2 - 1
    weights, g = torch.eye(10)[[3, 7]], torch.tensor([0.5, 3.0])
    loss = objective(x_T, x0, weights, g)
    a, s = objective.alpha, objective.sigma
    eps = (x_T - a[999] * x0) / s[999]
    assert torch.allclose(seen["x"][0], x_T[0], atol=1e-5)
    assert torch.allclose(seen["x"][1], a[400] * x0[1] + s[400] * eps[1], atol=1e-5)
    assert torch.equal(seen["c"][GUIDANCE_KEY], g) and torch.equal(seen["c"]["class_weights"], weights)
    t = seen["t"].view(-1, 1, 1, 1)
    x0_hat = a[t] * seen["x"] - s[t] * seen["out"].prediction  # the student predicts v
    assert torch.allclose(loss, (x0_hat - x0).square().mean(), atol=1e-6)


def test_rollout_items_start_where_the_students_own_first_call_puts_them(teacher, monkeypatch):
    """rollout_share 0.5 of 4 items: the first 2 are trained at a grid's second call, from x_t =
    a_s c + s_s (x_T - a_T c) / s_T with c the student's own clamped x0 at (x_T, T), and asked for
    x0* there; the others stay on the pair's path."""
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student = make_student_respond(student_of(teacher))

        def forward(self, x, t, c):
            out = self.student(x, t, c)
            calls.append(dict(x=x, t=t, c=c, out=out))
            return out

    objective = DistillObjective(Recorder(), teacher.diffusion_config, DistillConfig(pairs=4, perceptual=0.0, rollout_share=0.5))
    monkeypatch.setattr(objective, "timesteps", lambda batch, device: torch.tensor([999, 400, 300, 200]))
    torch.manual_seed(0)
    x_T, x0 = torch.randn(4, 1, 28, 28), torch.rand(4, 1, 28, 28) * 2 - 1
    weights, g = torch.eye(10)[[3, 7, 1, 2]], torch.tensor([0.5, 3.0, 1.0, 2.0])
    loss = objective(x_T, x0, weights, g)
    first, trained = calls
    a, s = objective.alpha, objective.sigma
    assert first["t"].tolist() == [999, 999] and torch.equal(first["x"], x_T[:2])
    assert torch.equal(first["c"][GUIDANCE_KEY], g[:2]) and torch.equal(first["c"]["class_weights"], weights[:2])
    c = (a[999] * x_T[:2] - s[999] * first["out"].prediction).clamp(-1, 1)
    assert set(trained["t"][:2].tolist()) <= {499, 666, 749} and trained["t"][2:].tolist() == [300, 200]
    at = trained["t"][:2].view(-1, 1, 1, 1)
    assert torch.allclose(trained["x"][:2], a[at] * c + s[at] * (x_T[:2] - a[999] * c) / s[999], atol=1e-5)
    eps = (x_T - a[999] * x0) / s[999]
    on_path = torch.tensor([300, 200]).view(-1, 1, 1, 1)
    assert torch.allclose(trained["x"][2:], a[on_path] * x0[2:] + s[on_path] * eps[2:], atol=1e-5)
    assert not torch.allclose(trained["x"][:2], a[at] * x0[:2] + s[at] * eps[:2], atol=1e-3)  # off the pair's path
    t = trained["t"].view(-1, 1, 1, 1)
    x0_hat = a[t] * trained["x"] - s[t] * trained["out"].prediction
    assert torch.allclose(loss, (x0_hat - x0).square().mean(), atol=1e-6)


def make_student_respond(student):
    """A fresh student predicts exactly its teacher's x0, so a rollout would land on no new place
    worth telling apart: nudge its output layer so that its first call's x0 differs from x0*."""
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return student


def test_timesteps_split_between_the_grids_and_uniform(teacher):
    objective = DistillObjective(student_of(teacher), teacher.diffusion_config, PAIRS)
    torch.manual_seed(0)
    t = objective.timesteps(20000, torch.device("cpu"))
    grid = torch.isin(t, torch.tensor([999, 749, 666, 499, 333, 249]))
    assert grid.float().mean().item() == pytest.approx(0.5 + 0.5 * 6 / 999, abs=0.02) and t.min() >= 1 and t.max() <= 999


def test_training_lowers_the_loss(drawn, teacher, tmp_path):
    import shutil

    shutil.copytree(drawn, tmp_path / "run")
    trainer = StudentTrainer(tmp_path / "run", config(epochs=6, lr=1e-3), PAIRS, teacher)

    def loss() -> float:
        with torch.random.fork_rng():
            torch.manual_seed(1)
            with torch.no_grad():
                return sum(float(trainer.objective(*trainer.batches.tensors)) for _ in range(4))

    before = loss()
    assert trainer.run()["step"] == 30  # 40 pairs / 8 = 5 steps x 6 epochs
    assert loss() < 0.9 * before


def test_a_stopped_distillation_resumes_at_its_checkpoint(drawn, teacher, tmp_path):
    import shutil

    shutil.copytree(drawn, tmp_path / "a")
    shutil.copytree(drawn, tmp_path / "b")
    straight = StudentTrainer(tmp_path / "a", config(), PAIRS, teacher)
    straight.run()

    def stop_at_3(event):
        if event.kind == "log" and event.step == 3:
            interrupted.stop("test")

    interrupted = StudentTrainer(tmp_path / "b", config(), PAIRS, teacher, on_event=stop_at_3)
    assert interrupted.run()["step"] == 3 and list_checkpoints(tmp_path / "b")[-1].name == "step-0000003.pt"
    resumed = StudentTrainer(tmp_path / "b", config(), PAIRS, teacher, resume=True)
    assert resumed.step == 3 and resumed.run()["step"] == 10
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(TrainingError, match="distils a student"):  # not a run for fashion-train
        from core.training.trainer import Trainer

        Trainer(tmp_path / "b", config(), resume=True)


def test_a_distillation_goes_on_from_a_student_of_its_teacher(drawn, teacher, tmp_path):
    """--init: the run starts from that student's weights (not the teacher's), records it, resumes
    without it, and refuses in one line a student of another teacher or a model that is no student."""
    import shutil

    from support import make_test_student

    earlier = make_test_student(tmp_path / "earlier.pt", seed=3)
    shutil.copytree(drawn, tmp_path / "run")
    stopped = StudentTrainer(tmp_path / "run", config(), PAIRS, teacher, init=earlier,
                             on_event=lambda e: e.kind == "log" and e.step == 2 and stopped.stop("test"))
    wanted = load_student(earlier, teacher).denoiser.state_dict()
    for name, value in stopped.model.state_dict().items():
        assert torch.equal(value, wanted[name].float()), name
    assert stopped.run()["step"] == 2
    info = json.loads((tmp_path / "run" / "run.json").read_text())["distill"]
    assert info["init"] == "earlier.pt" and len(info["init_hash"]) == 16
    earlier.unlink()  # a resume takes its weights from its checkpoint
    resumed = StudentTrainer(tmp_path / "run", config(), PAIRS, teacher, resume=True)
    assert resumed.run()["step"] == 10
    assert json.loads((tmp_path / "run" / "run.json").read_text())["distill"]["init"] == "earlier.pt"

    student = tmp_path / "run" / "student.pt"
    with pytest.raises(TrainingError, match="is not a student of") as refused:
        StudentTrainer(tmp_path / "other", config(), PAIRS, teacher, init=TEST_MODEL)
    assert "\n" not in str(refused.value) and not (tmp_path / "other").exists()
    data = read_checkpoint(student)
    data["distill"]["teacher_hash"] = "0" * 16
    torch.save(data, tmp_path / "foreign.pt")
    with pytest.raises(TrainingError, match="was distilled from 0000"):
        StudentTrainer(tmp_path / "other", config(), PAIRS, teacher, init=tmp_path / "foreign.pt")
    with pytest.raises(TrainingError, match="does not exist"):
        StudentTrainer(tmp_path / "other", config(), PAIRS, teacher, init=tmp_path / "missing.pt")


def test_fashion_train_distill_end_to_end(fake_data_dir, tmp_path, capsys):
    from train_cli import main

    run = tmp_path / "run"
    code = main(["distill", "--teacher", str(TEST_MODEL), "--run-dir", str(run), "--pairs", "32", "--shard-size", "16",
                 "--epochs", "2", "--batch-size", "8", "--quality-per-class", "1", "--data-dir", str(fake_data_dir),
                 "--no-progress", "--precision", "fp32", "--perceptual", "0.1", "--log-every", "1"])
    assert code == 0, capsys.readouterr().err
    info = json.loads((run / "run.json").read_text())
    assert info["state"] == "finished" and info["distill"]["teacher"] == TEST_MODEL.name and info["preset"] == "student"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 9)) and {"loss", "lr", "images_per_sec"} <= set(metrics[0])
    quality = [json.loads(line) for line in (run / QUALITY).read_text().splitlines()]
    assert [(q["epoch"], q["sampler"], q["steps"]) for q in quality] == [(1, STUDENT, 2), (2, STUDENT, 2)]
    assert list_checkpoints(run)[-1].name == "step-0000008.pt" and len(list(run.glob("samples/epoch-*.png"))) == 2
    exported = run / "student.pt"
    assert exported.stat().st_size < 5_000_000
    student = load_student(exported, load_generator(TEST_MODEL))
    assert student.info["step"] == 8 and read_checkpoint(exported)["distill"]["teacher_hash"] == load_generator(TEST_MODEL).hash
    err = capsys.readouterr().err
    assert "teacher pairs 32/32" in err and "student.pt" in err


def test_fashion_train_distill_refuses_in_one_line(tmp_path, capsys):
    from train_cli import main

    assert main(["distill", "--teacher", str(tmp_path / "missing.pt"), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    assert main(["distill", "--pairs", "0", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "does not exist" in err[0] and "--pairs must be at least 1" in err[1]
