"""The README's quality table: every sampler x guidance, scored like `fashion-tui evaluate`.

    python bench/quality_table.py --data-dir ../shared/data [--checkpoint PATH] [--guide PATH] [--n-per-class 100]
        [--configs ddim:50:2,ddpm:250:2,ddim:50:2:all,dpm:20:1:-:4:0.5] [--out checkpoints/evaluation.json]

A config is sampler:steps:guidance[:interval[:black[:autoguidance]]], interval lo-hi, "all" (guide
at every step) or "-" (the default interval, core.sampling.limits.DEFAULT_GUIDANCE_INTERVAL), black the
black level (default core.sampling.limits.DEFAULT_BLACK_LEVEL; 0 = raw model output), autoguidance the
weight w of the push away from the guide model (default 0; the guide is --guide, else the file
beside the checkpoint). Each row is what
`fashion-tui evaluate --sampler S --steps N --guidance G [--guidance-interval lo:hi|all] [--autoguidance W] --n-per-class K --seed 0`
prints, plus the wall time to sample 16 items with that recipe on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIGS = ("ddim:50:0,ddim:50:1,ddim:50:2,ddim:50:3,ddim:50:5,ddim:25:0,ddim:25:2,ddim:25:5,"
                   "ddpm:250:0,ddpm:250:2,ddpm:250:5,ddim:50:2:all:0,ddim:50:2:-:0,ddim:50:2:all")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--guide", default=None)
    parser.add_argument("--n-per-class", type=int, default=100)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from core.checkpoint import open_generator
    from core.classes import CLASS_NAMES, NUM_CLASSES
    from core.evaluation.classifier import load_classifier
    from core.evaluation.metrics import real_floors
    from core.evaluation.cli import evaluate_checkpoint
    from core.sampling.limits import DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE_INTERVAL
    from core.sampling.request import SampleRequest, parse_guidance_interval
    from core.sampling.samplers import sample

    generator = open_generator(args.checkpoint, guide=args.guide)
    classifier = load_classifier()
    floor, floor_infinity = real_floors(classifier, args.data_dir, args.n_per_class)  # floor_infinity: the same for every n
    rows = []
    print(f"checkpoint {generator.path} ({generator.hash}); {args.n_per_class} items per class; "
          f"real-vs-real floor at the same sample size: {floor:.3f}, bias-corrected {floor_infinity:.3f}", flush=True)
    print("| sampler | guidance (steps guided) | accuracy | worst class | Frechet (x floor) | bias-corrected | diversity gen/real | 16 items |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for spec in args.configs.split(","):
        sampler, steps, guidance, *rest = spec.split(":")
        steps, guidance = int(steps), float(guidance)
        interval = parse_guidance_interval(rest[0].replace("-", ":")) if rest and rest[0] != "-" else DEFAULT_GUIDANCE_INTERVAL
        black = int(rest[1]) if len(rest) > 1 else DEFAULT_BLACK_LEVEL
        auto = float(rest[2]) if len(rest) > 2 else 0.0
        boot = [0.0] * 9 + [1.0]
        start = time.perf_counter()
        sample(generator, SampleRequest(boot, n=16, sampler=sampler, steps=steps, guidance=guidance, seed=1,
                                        guidance_interval=interval, black_level=black, autoguidance=auto))
        sixteen = time.perf_counter() - start
        result = evaluate_checkpoint(generator, classifier, args.data_dir, args.n_per_class, guidance, sampler, steps,
                                     floor=floor, floor_infinity=floor_infinity, guidance_interval=interval, black_level=black,
                                     autoguidance=auto)
        worst = min(range(NUM_CLASSES), key=lambda c: result["per_class_accuracy"][c])
        row = {"sampler": sampler, "steps": steps, "guidance": guidance,
               "guidance_interval": list(interval) if interval is not None else None, "black_level": black, "autoguidance": auto,
               "guide_hash": generator.guide.hash if auto else None, "accuracy": result["accuracy"],
               "per_class_accuracy": result["per_class_accuracy"], "worst_class": CLASS_NAMES[worst],
               "worst_accuracy": result["per_class_accuracy"][worst], "frechet_distance": result["frechet_distance"],
               "floor": floor, "ratio": result["ratio"], "frechet_infinity": result["frechet_infinity"],
               "floor_infinity": floor_infinity, "diversity_ratio": result["diversity_ratio"],
               "seconds_16_items": sixteen, "seconds_eval": result["seconds"]}
        rows.append(row)
        scope = "" if guidance == 0 else " (all)" if interval is None else f" ({interval[0]}-{interval[1]})"
        scope += "" if black == DEFAULT_BLACK_LEVEL else f", black {black}"
        scope += f" + autoguidance {auto:g}" if auto else ""
        print(f"| {sampler.upper()} {steps} | {guidance:g}{scope} | {100 * row['accuracy']:.1f}% | {row['worst_class']} "
              f"{100 * row['worst_accuracy']:.0f}% | {row['frechet_distance']:.3f} ({row['ratio']:.2f}x) | "
              f"{'-' if row['frechet_infinity'] is None else format(row['frechet_infinity'], '.3f')} | "
              f"{row['diversity_ratio']:.2f} | {sixteen:.2f} s |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"checkpoint_hash": generator.hash, "n_per_class": args.n_per_class,
                                              "floor": floor, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
