"""How crisp and how faithful class mixes are, for every mix method. Prints tables; asserts nothing.

    python bench/blend_quality.py [--checkpoint P] [--n 128] [--methods compose,norm,average]
                                  [--strip 11] [--strip-n 32] [--json-out F]
                                  [--sampler student [--steps K] [--student P]]

For each pair of classes and each share of the second class (30/50/70%), `--n` items with the
default sampler and guidance (item i from seed i, the same noise for every mix and method):
  sharpness  median RMS of the 4-neighbour Laplacian of the pixels in [0, 1], relative to the
             median of the two pure classes' items
  ghosts     items whose max-min contrast is below 0.6 or whose sharpness is below 40% of that median
  mass       the shipped classifier's mean probability on the two mixed classes
  second     the mean share of the second class, p2 / (p1 + p2)
Then an `--strip`-step strip per pair (`--strip-n` items per ratio): the second class's mean share
at each ratio, and whether it rises monotonically. Last, the time for 16 items of a pure class and
of a 2- and a 3-class mix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAIRS = (("sneaker", "boot"), ("tshirt", "dress"), ("pullover", "coat"), ("sandal", "sneaker"))
RATIOS = (0.3, 0.5, 0.7)  # share of the second class
GHOST_CONTRAST = 0.6
GHOST_SHARPNESS = 0.4
MONOTONIC_SLACK = 0.01  # the pure ends read ~0.02 and ~0.98 whatever the seed: dips smaller than this are noise


def sharpness(images):
    """(N,1,28,28) in [-1,1] -> (N,) RMS of the 4-neighbour Laplacian of pixels in [0, 1]."""
    import torch.nn.functional as F
    import torch

    x = (images.float().clamp(-1, 1) + 1) / 2
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(x, kernel).pow(2).mean(dim=(1, 2, 3)).sqrt()


def contrast(images):
    x = (images.float().clamp(-1, 1) + 1) / 2
    flat = x.flatten(1)
    return flat.max(dim=1).values - flat.min(dim=1).values


def weights_for(first: int, second: int, share: float) -> list[float]:
    row = [0.0] * 10
    row[first] += 1.0 - share
    row[second] += share
    return row


def main() -> None:
    from core.classes import DEFAULT_MIX, MIX_METHODS, SHORT_NAMES, class_index

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--n", type=int, default=128, help="items per mix (default 128)")
    parser.add_argument("--methods", default=",".join(MIX_METHODS))
    parser.add_argument("--pairs", default=",".join(f"{a}+{b}" for a, b in PAIRS))
    parser.add_argument("--strip", type=int, default=11, help="ratios in the strip (0 = skip it)")
    parser.add_argument("--strip-n", type=int, default=32, help="items per strip ratio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--autoguidance", type=float, default=0.0, help="w (default 0, the app's default)")
    parser.add_argument("--sampler", default=None, help="default: the app's; student: the student beside the model (compose only)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--student", default=None, help="the student's checkpoint (default: NAME-student.pt beside the model)")
    args = parser.parse_args()

    import torch

    from core.checkpoint import open_generator
    from core.evaluation.classifier import load_classifier
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    from core.sampling.limits import DEFAULT_SAMPLER, STUDENT

    generator = open_generator(args.checkpoint, student=args.student)
    autoguidance = args.autoguidance
    sampler = args.sampler or DEFAULT_SAMPLER
    classifier = load_classifier()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if sampler == STUDENT:
        methods = [DEFAULT_MIX]  # the student composes; its mix is not a setting
    pairs = [tuple(class_index(name) for name in pair.split("+")) for pair in args.pairs.split(",")]
    n = args.n

    def draw(weights, method, count=n, seed=args.seed):
        request = SampleRequest(weights, n=count, seed=seed, mix=method, autoguidance=autoguidance, sampler=sampler,
                                steps=args.steps)
        return sample(generator, request, max_items=max(count, 64))

    def probabilities(images):
        with torch.inference_mode():
            return torch.softmax(classifier(images.float().contiguous(memory_format=torch.channels_last)), dim=1)

    print(f"checkpoint {generator.path.name} · sampler {sampler} · autoguidance {autoguidance:g} · {n} items per mix · default mix {DEFAULT_MIX} · "
          f"{torch.get_num_threads()} threads")
    records = []
    pure_cache: dict[int, torch.Tensor] = {}

    def pure(c):
        if c not in pure_cache:
            pure_cache[c] = draw(weights_for(c, c, 0.0), "average" if sampler != STUDENT else DEFAULT_MIX)
        return pure_cache[c]

    header = f"{'mix':<24} {'method':<8} {'sharp':>6} {'ghosts':>7} {'mass':>6} {'second':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for first, second in pairs:
        reference = statistics.median(torch.cat([sharpness(pure(first)), sharpness(pure(second))]).tolist())
        for c in (first, second):
            images = pure(c)
            p = probabilities(images)
            sharp = sharpness(images)
            ghosts = ((contrast(images) < GHOST_CONTRAST) | (sharp < GHOST_SHARPNESS * reference)).float().mean().item()
            print(f"{'pure ' + SHORT_NAMES[c]:<24} {'-':<8} {statistics.median(sharp.tolist()) / reference:>5.2f}x "
                  f"{100 * ghosts:>6.0f}% {p[:, [first, second]].sum(1).mean().item():>6.2f} "
                  f"{(p[:, second] / p[:, [first, second]].sum(1).clamp_min(1e-8)).mean().item():>7.2f}")
        for method in methods:
            for share in RATIOS:
                images = draw(weights_for(first, second, share), method)
                p = probabilities(images)
                sharp = sharpness(images)
                ghosts = ((contrast(images) < GHOST_CONTRAST) | (sharp < GHOST_SHARPNESS * reference)).float().mean().item()
                pair_p = p[:, [first, second]]
                record = {
                    "first": SHORT_NAMES[first], "second": SHORT_NAMES[second], "share": share, "method": method,
                    "sharpness": statistics.median(sharp.tolist()) / reference, "ghosts": ghosts,
                    "mass": pair_p.sum(1).mean().item(),
                    "second_share": (pair_p[:, 1] / pair_p.sum(1).clamp_min(1e-8)).mean().item(),
                }
                records.append(record)
                label = f"{SHORT_NAMES[first]} {round(100 * (1 - share))} + {SHORT_NAMES[second]} {round(100 * share)}"
                print(f"{label:<24} {method:<8} {record['sharpness']:>5.2f}x {100 * ghosts:>6.0f}% "
                      f"{record['mass']:>6.2f} {record['second_share']:>7.2f}", flush=True)

    strips = []
    if args.strip > 1:
        print(f"\nstrips: mean share of the second class at {args.strip} ratios ({args.strip_n} items each; "
              f"'rising' allows dips under {MONOTONIC_SLACK})")
        for first, second in pairs:
            for method in methods:
                shares = []
                for k in range(args.strip):
                    share = k / (args.strip - 1)
                    p = probabilities(draw(weights_for(first, second, share), method, args.strip_n))[:, [first, second]]
                    shares.append((p[:, 1] / p.sum(1).clamp_min(1e-8)).mean().item())
                monotonic = all(b >= a - MONOTONIC_SLACK for a, b in zip(shares, shares[1:]))
                strips.append({"first": SHORT_NAMES[first], "second": SHORT_NAMES[second], "method": method,
                               "shares": shares, "monotonic": monotonic})
                print(f"{SHORT_NAMES[first] + '->' + SHORT_NAMES[second]:<18} {method:<8} "
                      + " ".join(f"{s:.2f}" for s in shares) + ("  rising" if monotonic else "  NOT monotonic"), flush=True)

    print("\n16 items, median of 3 runs (s):")
    timings = {}
    mixes = {"pure": weights_for(9, 9, 0.0), "2-class": weights_for(7, 9, 0.5),
             "3-class": [0.0, 0.0, 0.0, 0.0, 0.0, 1 / 3, 0.0, 1 / 3, 0.0, 1 / 3]}
    for method in methods:
        row = {}
        for name, weights in mixes.items():
            draw(weights, method, 16)  # warm-up
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                draw(weights, method, 16)
                runs.append(time.perf_counter() - started)
            row[name] = statistics.median(runs)
        timings[method] = row
        print(f"  {method:<8} pure {row['pure']:.2f} · 2-class {row['2-class']:.2f} ({row['2-class'] / row['pure']:.2f}x) · "
              f"3-class {row['3-class']:.2f} ({row['3-class'] / row['pure']:.2f}x)")

    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"n": n, "mixes": records, "strips": strips, "timings": timings}, indent=1))


if __name__ == "__main__":
    main()
