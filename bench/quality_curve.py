"""Quality against training minutes: evaluate every (or every k-th) checkpoint of a run.

    python bench/quality_curve.py runs/default --data-dir ../shared/data [--every 2] [--n-per-class 50]
        [--at 468,936,4680]

Prints training minutes (the checkpoint's recorded wall time), conditional accuracy, worst class
and Frechet ratio for DDIM 50 at guidance 2; writes the rows as JSON beside the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def step_list(text: str) -> list[int]:
    """'468,936' -> [468, 936] (argparse turns the ValueError into a one-line usage error)."""
    return [int(step) for step in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--n-per-class", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--black-level", type=int, default=None)
    parser.add_argument("--guidance-interval", default=None, help="lo:hi or all (default: the sampler's default)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--min-step", type=int, default=0)
    parser.add_argument("--max-step", type=int, default=10**9)
    parser.add_argument("--at", default=None, type=step_list, help="only the checkpoints of these steps, e.g. 468,936,4680")
    args = parser.parse_args()

    from core.checkpoint import load_generator, read_checkpoint
    from core.classes import CLASS_NAMES, NUM_CLASSES
    from core.evaluation.classifier import load_classifier
    from core.evaluation.metrics import real_floors
    from core.evaluation.cli import evaluate_checkpoint
    from core.sampling.limits import DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE_INTERVAL
    from core.sampling.request import parse_guidance_interval
    from core.training.rundir import list_checkpoints

    interval = DEFAULT_GUIDANCE_INTERVAL if args.guidance_interval is None else parse_guidance_interval(args.guidance_interval)

    if args.at:  # exactly these steps (--every, --min-step and --max-step do not apply)
        wanted = set(args.at)
        paths = [p for p in list_checkpoints(args.run_dir) if int(p.stem[5:]) in wanted]
        missing = sorted(wanted - {int(p.stem[5:]) for p in paths})
        if missing:
            sys.exit(f"no checkpoint in {args.run_dir} for step(s) {', '.join(map(str, missing))}")
    else:
        paths = [p for p in list_checkpoints(args.run_dir)[:: args.every] if args.min_step <= int(p.stem[5:]) <= args.max_step]
    classifier = load_classifier()
    floor = real_floors(classifier, args.data_dir, args.n_per_class)[0]
    rows = []
    print(f"{'checkpoint':<18} {'minutes':>7} {'epoch':>5} {'accuracy':>8} {'worst':>16} {'FD ratio':>8}")
    for path in paths:
        state = read_checkpoint(path)
        generator = load_generator(path)
        result = evaluate_checkpoint(generator, classifier, args.data_dir, args.n_per_class, args.guidance, "ddim",
                                     args.steps, floor=floor, guidance_interval=interval,
                                     black_level=DEFAULT_BLACK_LEVEL if args.black_level is None else args.black_level)
        worst = min(range(NUM_CLASSES), key=lambda c: result["per_class_accuracy"][c])
        row = {"checkpoint": path.name, "minutes": state["wall_time_sec"] / 60, "step": state["step"], "epoch": state["epoch"],
               "accuracy": result["accuracy"], "worst_class": CLASS_NAMES[worst],
               "worst_accuracy": result["per_class_accuracy"][worst], "frechet_ratio": result["ratio"],
               "frechet_distance": result["frechet_distance"]}
        rows.append(row)
        print(f"{path.name:<18} {row['minutes']:>7.1f} {row['epoch']:>5} {100 * row['accuracy']:>7.1f}% "
              f"{row['worst_class'][:10]:>10} {100 * row['worst_accuracy']:>4.0f}% {row['frechet_ratio']:>7.2f}x", flush=True)
    out = Path(args.out) if args.out else Path(args.run_dir) / "quality_curve.json"
    out.write_text(json.dumps({"n_per_class": args.n_per_class, "guidance": args.guidance, "steps": args.steps,
                               "guidance_interval": list(interval) if interval is not None else None,
                               "floor": floor, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
