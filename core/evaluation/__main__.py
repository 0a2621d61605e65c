"""python -m core.evaluation --train-classifier: train and save the evaluation classifier."""

from __future__ import annotations

import argparse
import sys
import time

from ..data import DataError
from .classifier import EpochReport, default_classifier_path, save_classifier, train_classifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluation", description="Train the evaluation classifier.")
    parser.add_argument("--train-classifier", action="store_true", help="train and save the classifier")
    parser.add_argument("--data-dir", default=None, help="folder holding FashionMNIST/raw/ (default: $FASHION_TUI_DATA or ./data)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(default_classifier_path()))
    args = parser.parse_args(argv)
    if not args.train_classifier:
        parser.print_help()
        return 2

    def report(r: EpochReport) -> None:
        print(f"epoch {r.epoch}/{r.epochs}  loss {r.loss:.4f}  train acc {100 * r.train_accuracy:.2f}%  "
              f"test acc {100 * r.test_accuracy:.2f}%  ({r.seconds:.0f}s)", flush=True)

    started = time.perf_counter()
    try:
        model, config, accuracy = train_classifier(args.data_dir, args.epochs, args.seed, report, batch_size=args.batch_size)
        path = save_classifier(model, config, args.out, accuracy)
    except (DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"test accuracy {100 * accuracy:.2f}% (fp16 weights) in {time.perf_counter() - started:.0f}s; "
          f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
