"""Render docs/samples.png: one row per class from the shipped model, then a sneaker-to-boot blend strip.

    python docs/make_samples.py [--checkpoint PATH] [--per-class 8] [--scale 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "samples.png"))
    args = parser.parse_args()

    import torch

    from core.checkpoint import default_checkpoint, load_generator
    from core.classes import class_index
    from core.images import make_grid, save_png, to_pil
    from core.sampling.request import SampleRequest, blend_weights
    from core.sampling.samplers import sample

    generator = load_generator(args.checkpoint or default_checkpoint())
    rows = []
    for c in range(10):
        weights = [1.0 if i == c else 0.0 for i in range(10)]
        rows.append(sample(generator, SampleRequest(weights, n=args.per_class, seed=100 * c)))
    blend = blend_weights(class_index("sneaker"), class_index("boot"), args.per_class)
    rows.append(sample(generator, SampleRequest(blend[0], n=args.per_class, seed=7, shared_noise=True, per_item_weights=blend)))
    grid = make_grid(torch.cat(rows), args.per_class)
    save_png(to_pil(grid, "grey", args.scale), args.out,
             {"what": "rows 1-10: one class each (default settings, seeds 100*class + i); row 11: sneaker -> boot blend, seed 7",
              "checkpoint_hash": generator.hash})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
