"""Render docs/blends.png: blend strips of three class pairs, each mix method on its own row.

    python docs/make_blends.py [--checkpoint PATH] [--methods average,compose] [--steps 9] [--seeds 7,3] [--scale 3]

For each pair and seed, one row per method (in the order given: the original way first), each
row stepping from 100% of the first class to 100% of the second with one shared seed (the app's
`b` strip).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAIRS = (("sneaker", "boot"), ("tshirt", "dress"), ("pullover", "coat"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--methods", default="average,compose")
    parser.add_argument("--steps", type=int, default=9, help="items per strip")
    parser.add_argument("--seeds", default="7")
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "blends.png"))
    args = parser.parse_args()

    import torch

    from core.checkpoint import default_checkpoint, load_generator
    from core.classes import class_index
    from core.images import make_grid, save_png, to_pil
    from core.sampling.request import SampleRequest, blend_weights
    from core.sampling.samplers import sample

    generator = load_generator(args.checkpoint or default_checkpoint())
    methods = args.methods.split(",")
    rows = []
    for first, second in PAIRS:
        blend = blend_weights(class_index(first), class_index(second), args.steps)
        for seed in (int(s) for s in args.seeds.split(",")):
            for method in methods:
                request = SampleRequest(blend[0], n=args.steps, seed=seed, shared_noise=True, per_item_weights=blend, mix=method)
                rows.append(sample(generator, request))
    grid = make_grid(torch.cat(rows), args.steps)
    save_png(to_pil(grid, "grey", args.scale), args.out,
             {"what": f"blend strips {', '.join('->'.join(p) for p in PAIRS)}; rows per pair: {', '.join(methods)} "
                      f"(DDIM 50, guidance 2, seeds {args.seeds})", "checkpoint_hash": generator.hash})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
