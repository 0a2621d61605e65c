"""Make the test model: tests/data/test-model.pt and its autoguidance guide, test-model-guide.pt.

    python tests/make_test_model.py [--data-dir ../shared/data] [--out tests/data]

The app and recipe tests compare the pixels the app shows, or a PNG's recipe reproduces, with
core.sampling.samplers.sample() of the request they expect. That comparison checks a field only if
the model draws other pixels when the field changes. An untrained model cannot: its output layer
starts at zero, so it draws the same pixels for every class, share, guidance, interval and mix.

So the tests sample a small trained model instead: the `tiny` preset (127k parameters) trained
for STEPS steps on Fashion-MNIST, its EMA weights written as 16-bit floats (~260 kB). Its guide is
the same run's EMA at GUIDE_STEP: a weaker version of the model itself, as autoguidance wants
(Karras et al. 2024), saved beside it as NAME-guide.pt, where the app and open_generator look.
Both go through core.checkpoint.export_generator, so they load without running code.
tests/core/test_test_model.py asserts that each request field, changed alone, moves the pixels.

Rerun it only to change the model (~3 minutes on 2 CPU cores); the tests' expected values are
all computed from whatever model is there, none is written down.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = 1500  # enough for each class to draw its own shape at DDIM 4; a few minutes on a CPU
GUIDE_STEP = 300  # the guide: the same run this early is visibly weaker
BATCH = 128
NAME = "test-model.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(REPO / "tests" / "data"))
    args = parser.parse_args()

    from core.checkpoint import export_generator, guide_path_for, read_checkpoint
    from core.model.config import TrainConfig
    from core.training.rundir import checkpoint_name
    from core.training.trainer import Trainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        config = TrainConfig(epochs=100, batch_size=BATCH, max_steps=STEPS, warmup_steps=100, checkpoint_every=GUIDE_STEP,
                             keep_checkpoints=100, log_every=100, sample_grid_per_class=0,
                             device="cpu", seed=0)

        def report(event) -> None:
            if event.kind == "log":
                print(f"step {event.step}/{STEPS}  loss {event.data['loss_smooth']:.4f}", flush=True)

        result = Trainer(run, config, preset="tiny", data_dir=args.data_dir, on_event=report).run()
        assert result["step"] == STEPS, result
        model = out / NAME
        export_generator(read_checkpoint(run / "checkpoints" / checkpoint_name(STEPS)), model, half=True)
        export_generator(read_checkpoint(run / "checkpoints" / checkpoint_name(GUIDE_STEP)), guide_path_for(model), half=True)
    for path in (model, guide_path_for(model)):
        print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
