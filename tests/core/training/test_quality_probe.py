"""The quality probe: a record per epoch in quality.jsonl, its items the evaluator's, cut back on
resume, and a run without the test split or the classifier says so once and trains on."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.evaluation.cli import make_sample_fn
from core.evaluation.probe import PROBE_PER_CLASS, QualityProbe, auto_per_class
from core.model.config import TrainConfig
from core.training.rundir import QUALITY
from core.training.trainer import Trainer

FIELDS = {"step", "epoch", "images", "elapsed_sec", "accuracy", "per_class_accuracy", "kid", "kid_std", "items", "per_class",
          "real_items", "sampler", "steps", "guidance", "precision", "seconds", "train_seconds", "cost", "time"}


def config(**overrides) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, checkpoint_every=100, log_every=1, sample_grid_per_class=0, seed=0,
                warmup_steps=2)
    return TrainConfig(**(base | overrides))


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / QUALITY).read_text().splitlines()]


def test_a_record_per_epoch_from_the_evaluators_items(tmp_path, fake_data_dir):
    events = []
    probe = QualityProbe(fake_data_dir, per_class=2)
    trainer = Trainer(tmp_path / "run", config(), preset="tiny", data_dir=fake_data_dir, on_event=events.append,
                      quality=probe)
    trainer.run()
    lines = records(tmp_path / "run")
    assert [(r["step"], r["epoch"], r["images"]) for r in lines] == [(4, 1, 64), (8, 2, 128)]
    assert FIELDS <= set(lines[0]) and lines[0]["items"] == 20 and lines[0]["real_items"] == 20
    assert len(lines[0]["per_class_accuracy"]) == 10 and 0 <= lines[0]["accuracy"] <= 1
    assert lines[1]["elapsed_sec"] > lines[0]["elapsed_sec"] > 0 and lines[1]["train_seconds"] > 0
    assert [e.data["step"] for e in events if e.kind == "quality"] == [4, 8]
    # the items are the evaluator's first ones: scoring them again from the final EMA gives the same figures
    again = probe.score(probe_generator(trainer), trainer.device)
    assert again["accuracy"] == lines[1]["accuracy"] and again["kid"] == pytest.approx(lines[1]["kid"])
    sample_fn = make_sample_fn(probe_generator(trainer), again["guidance"], "dpm", None, 0, 2, precision=again["precision"])
    first_items = torch.cat([sample_fn(c, 2) for c in range(10)])
    from core.evaluation.classifier import predict

    predicted = predict(probe.classifier, first_items.clamp(-1, 1))
    assert (predicted == torch.arange(10).repeat_interleave(2)).double().mean().item() == again["accuracy"]


def test_the_probes_accuracy_is_the_evaluators_on_the_same_items(trained, fake_data_dir):
    # the test model draws each class apart (its accuracy differs from class to class), so scores
    # compared against the wrong classes read differently; an untrained model's items read the same
    from dataclasses import replace

    from core.evaluation.cli import evaluate_checkpoint

    generator, device = replace(trained, guide=None), torch.device("cpu")
    probe = QualityProbe(fake_data_dir, per_class=5)
    assert probe.prepare(device) is None
    scores = probe.score(generator, device)
    evaluated = evaluate_checkpoint(generator, probe.classifier, fake_data_dir, 5, scores["guidance"], scores["sampler"],
                                    None, seed=0, floor=1.0, precision=scores["precision"])  # `fashion-tui evaluate --seed 0`
    assert scores["accuracy"] == evaluated["accuracy"] and 0 < scores["accuracy"] < 1
    assert scores["per_class_accuracy"] == evaluated["per_class_accuracy"]
    assert len(set(scores["per_class_accuracy"])) > 2


def probe_generator(trainer):
    from core.checkpoint import Generator

    return Generator(trainer.ema, trainer.model_config, trainer.diffusion_config, None, "training", {})


def test_resume_cuts_quality_back_like_metrics(tmp_path, fake_data_dir):
    run = tmp_path / "run"
    Trainer(run, config(epochs=1, checkpoint_every=2), preset="tiny", data_dir=fake_data_dir,
            quality=QualityProbe(fake_data_dir, per_class=1)).run()
    with open(run / QUALITY, "a") as handle:  # a record past the checkpoint resumed from, and a half-written line
        handle.write(json.dumps({"step": 99, "accuracy": 0.5}) + "\n" + '{"step": 10')
    (run / "checkpoints" / "step-0000004.pt").unlink()  # resume from step 2
    Trainer(run, config(epochs=1, checkpoint_every=2), preset="tiny", data_dir=fake_data_dir, resume=True,
            quality=QualityProbe(fake_data_dir, per_class=1)).run()
    assert [r["step"] for r in records(run)] == [4]  # the first run's step-4 record was past step 2: written again once


@pytest.mark.parametrize("missing", ["data", "classifier"])
def test_without_the_test_split_or_the_classifier_it_says_so_once_and_trains_on(tmp_path, fake_data_dir, missing):
    notices = []
    if missing == "data":
        shutil.rmtree(fake_data_dir / "FashionMNIST" / "raw")
        (fake_data_dir / "FashionMNIST" / "raw").mkdir()
        from core.data import load_split
        from support import make_fake_dataset

        train = load_split("train", make_fake_dataset(tmp_path / "train-only"))  # the trainer's own split
        probe, data = QualityProbe(fake_data_dir, per_class=1), train
    else:
        probe, data = QualityProbe(fake_data_dir, per_class=1, classifier=tmp_path / "no-classifier.pt"), None
    trainer = Trainer(tmp_path / "run", config(epochs=3), preset="tiny", data_dir=fake_data_dir, data=data,
                      on_event=lambda e: notices.append(e.data["message"]) if e.kind == "notice" else None, quality=probe)
    result = trainer.run()
    assert result["outcome"] == "finished" and result["step"] == 12
    assert len(notices) == 1 and notices[0].startswith("no quality probe:") and "training goes on" in notices[0]
    assert not (tmp_path / "run" / QUALITY).exists()


def test_auto_items_stay_within_a_tenth_of_an_epoch(tmp_path, fake_data_dir):
    assert auto_per_class(60_000) == PROBE_PER_CLASS  # a full Fashion-MNIST epoch: the most
    assert auto_per_class(4096) == 2 and auto_per_class(64) == 1  # a --limit run; a test's handful: one each
    probe = QualityProbe(fake_data_dir)  # auto: 64 images an epoch
    Trainer(tmp_path / "run", config(epochs=1), preset="tiny", data_dir=fake_data_dir, quality=probe).run()
    assert probe.per_class == 1 and records(tmp_path / "run")[0]["items"] == 10


def test_a_run_with_a_probe_trains_the_same_weights(tmp_path, fake_data_dir):
    # the probe loads a classifier (whose layers initialise from the global RNG) and samples: none of
    # it may move the training's stream of timesteps and noise
    weights = []
    for name, quality in (("plain", None), ("probed", QualityProbe(fake_data_dir, per_class=1))):
        trainer = Trainer(tmp_path / name, config(), preset="tiny", data_dir=fake_data_dir, quality=quality)
        trainer.run()  # each run draws from the global RNG its constructor seeded
        weights.append(trainer.model.state_dict())
    plain, probed = weights
    assert all(torch.equal(plain[key], probed[key]) for key in plain)
    assert (tmp_path / "probed" / QUALITY).exists()
