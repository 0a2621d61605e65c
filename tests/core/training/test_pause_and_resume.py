"""What pausing and resuming keep: a paused trainer takes no step; a resumed one samples from its saved EMA weights."""

import threading

import torch

from core.checkpoint import read_checkpoint
from core.model.config import TrainConfig
from core.training.rundir import list_checkpoints
from core.training.trainer import Trainer


def config(**overrides):
    base = dict(epochs=2, batch_size=16, checkpoint_every=3, log_every=1, sample_grid_per_class=0, seed=0, warmup_steps=2)
    return TrainConfig(**(base | overrides))


def test_a_paused_trainer_takes_no_step_until_unpaused(tmp_path, fake_data_dir):
    """Paused from its own event at step 2, the trainer must wait there: a step logged while the flag
    is up is a pause that did not hold. Unpaused half a second later, it finishes the run."""
    seen_paused, held_at = [], []

    def unpause_later():
        held_at.append(trainer.step)
        trainer.unpause()

    def on_event(event):
        if event.kind != "log":
            return
        if trainer.paused:
            seen_paused.append(event.step)
        if event.step == 2:
            trainer.pause()  # from the training thread itself: the next step is the first that must wait
            threading.Timer(0.5, unpause_later).start()

    trainer = Trainer(tmp_path / "run", config(max_steps=6), preset="tiny", data_dir=fake_data_dir, on_event=on_event)
    result = trainer.run()
    assert seen_paused == [] and held_at == [2]
    assert result["outcome"] == "finished" and result["step"] == 6 and not trainer.paused


def test_resume_restores_the_ema_weights_that_sampling_uses(tmp_path, fake_data_dir):
    def stop_at_5(event):
        if event.kind == "log" and event.step == 5:
            first.stop("test")

    first = Trainer(tmp_path / "run", config(), preset="tiny", data_dir=fake_data_dir, on_event=stop_at_5)
    assert first.run()["step"] == 5
    saved = read_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    assert any(not torch.equal(saved["ema"][key], saved["model"][key]) for key in saved["model"])  # two sets of weights
    resumed = Trainer(tmp_path / "run", config(), data_dir=fake_data_dir, resume=True)
    for key, value in resumed.ema.state_dict().items():
        assert torch.equal(value, saved["ema"][key]), key


def test_stopped_and_resumed_ends_with_the_ema_of_an_uninterrupted_run(tmp_path, fake_data_dir):
    straight = Trainer(tmp_path / "a", config(), preset="tiny", data_dir=fake_data_dir)
    straight.run()

    def stop_at_5(event):
        if event.kind == "log" and event.step == 5:
            interrupted.stop("test")

    interrupted = Trainer(tmp_path / "b", config(), preset="tiny", data_dir=fake_data_dir, on_event=stop_at_5)
    interrupted.run()
    resumed = Trainer(tmp_path / "b", config(), data_dir=fake_data_dir, resume=True)
    assert resumed.run()["step"] == 8
    final = read_checkpoint(list_checkpoints(tmp_path / "b")[-1])["ema"]  # what a generator loads
    for key, value in straight.ema.state_dict().items():
        assert torch.allclose(final[key], value, atol=1e-6), key
