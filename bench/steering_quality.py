"""How well the steering works: edits from a real picture, variations, class switches. Prints
tables; asserts nothing.

    python bench/steering_quality.py [--checkpoint P] [--data-dir DIR] [--sources 8] [--n 64]
                                     [--strength 0.6] [--parents 8] [--variations 16] [--precision fp32]

Edits: the first `--sources` sneakers of the real Fashion-MNIST test set, each edited towards
`boot` at `--strength` with the default sampler and guidance, item i from seed i (`--n` seeds). For
every source it prints how many of the edits the shipped classifier reads as a boot, and how much
of the source's silhouette each keeps: the intersection over union of the two silhouettes
(pixels brighter than SILHOUETTE/255), against the same for a plain boot of the same seed.

Variations: `--parents` plain sneakers (seeds 0..), each with `--variations` variations at
several strengths. Distances are L2 in the shipped classifier's features (as its Frechet distance
and diversity are): to the item's own parent, to the nearest other parent (and the share of items
nearest to their own parent), and the spread of the siblings of one parent, the mean pairwise
distance, against that of as many groups of plain sneakers (strength 1 draws plain items of other
seeds, so it should match within noise).

Class switches: sneaker then boot at several switch points, the classifier's share of boots.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SNEAKER, BOOT = 7, 9
SILHOUETTE = 25  # grey level (of 255) above which a pixel belongs to the item
VARIATION_STRENGTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
SWITCH_POINTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
VARIATION_SEED = 10_000  # variations of parent p use variation seeds VARIATION_SEED + 100 p + i
PLAIN_SEED = 20_000  # the plain items the siblings' spread is compared with: group p is PLAIN_SEED + 100 p + i


def one_hot(index: int) -> list[float]:
    return [1.0 if c == index else 0.0 for c in range(10)]


def silhouette(grey):
    """uint8 (..., 28, 28) -> bool masks."""
    return grey > SILHOUETTE


def iou(a, b):
    """bool (N, 28, 28) against bool (28, 28) -> (N,) intersection over union."""
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float().clamp_min(1)
    return inter / union


def edits(generator, classifier, args) -> None:
    from core.data import load_split
    from core.evaluation.classifier import predict
    from core.images import to_uint8
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    test = load_split("test", args.data_dir)
    sources = test.images[test.labels == SNEAKER][: args.sources]  # (S, 28, 28) uint8
    print(f"\nEdits: {len(sources)} real test-set sneakers towards boot at strength {args.strength:g}, "
          f"{args.n} seeds each (the default sampler and guidance)")
    print("source | read as boot | silhouette IoU with the source: edit / plain boot | edits closer than their plain boot")
    plain = sample(generator, SampleRequest(one_hot(BOOT), n=args.n, steps=args.steps, precision=args.precision))
    plain_masks = silhouette(to_uint8(plain[:, 0]))
    totals = []
    for number, source in enumerate(sources):
        request = SampleRequest(one_hot(BOOT), n=args.n, steps=args.steps, precision=args.precision,
                                init_image=source.numpy().tobytes(), init_strength=args.strength)
        images = sample(generator, request)
        boots = float((predict(classifier, images) == BOOT).float().mean())
        mask = silhouette(source)
        kept, plain_kept = iou(silhouette(to_uint8(images[:, 0])), mask), iou(plain_masks, mask)
        closer = float((kept > plain_kept).float().mean())
        totals.append((boots, float(kept.mean()), float(plain_kept.mean()), closer))
        print(f"{number:>6} | {boots:>12.1%} | {float(kept.mean()):.2f} / {float(plain_kept.mean()):.2f} "
              f"| {closer:.0%}")
    boots, kept, plain_kept, closer = (statistics.mean(column) for column in zip(*totals))
    print(f"   all | {boots:>12.1%} | {kept:.2f} / {plain_kept:.2f} | {closer:.0%}   (worst source: "
          f"{min(t[0] for t in totals):.1%} boots)")


def variations(generator, classifier, args) -> None:
    import torch

    from core.evaluation.classifier import extract_features
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    def features(**fields):
        request = SampleRequest(one_hot(SNEAKER), steps=args.steps, precision=args.precision, **fields)
        return extract_features(classifier, sample(generator, request)).double()

    parents = features(n=args.parents, seed=0)  # (P, F): parent p is seed p
    spread_plain = statistics.mean(float(torch.pdist(features(n=args.variations, seed=PLAIN_SEED + 100 * p)).mean())
                                   for p in range(args.parents))
    print(f"\nVariations: {args.parents} sneaker parents, {args.variations} variations each; L2 in the classifier's "
          f"features (as many groups of {args.variations} plain sneakers spread {spread_plain:.2f} apart)")
    print("strength | to own parent | to nearest other parent | nearest is own parent | sibling spread (x plain)")
    for strength in VARIATION_STRENGTHS:
        own, other, nearest, spread = [], [], [], []
        for p in range(args.parents):
            items = features(n=args.variations, seed=p, shared_noise=True, variation_seed=VARIATION_SEED + 100 * p,
                             variation_strength=strength)
            distances = torch.cdist(items, parents)  # (V, P)
            mine = distances[:, p]
            others = torch.cat([distances[:, :p], distances[:, p + 1:]], dim=1).min(dim=1).values
            own.append(float(mine.mean()))
            other.append(float(others.mean()))
            nearest.append(float((distances.argmin(dim=1) == p).float().mean()))
            spread.append(float(torch.pdist(items).mean()))
        print(f"{strength:>8g} | {statistics.mean(own):>13.2f} | {statistics.mean(other):>23.2f} | "
              f"{statistics.mean(nearest):>21.0%} | {statistics.mean(spread):.2f} ({statistics.mean(spread) / spread_plain:.2f}x)")


def switches(generator, classifier, args) -> None:
    from core.evaluation.classifier import predict
    from core.sampling.request import SampleRequest
    from core.sampling.samplers import sample

    print(f"\nClass switches: sneaker then boot, {args.n} seeds (the share the classifier reads as each)")
    print("switch at | boot | sneaker")
    for at in SWITCH_POINTS:
        request = SampleRequest(one_hot(SNEAKER), n=args.n, steps=args.steps, precision=args.precision,
                                switch_to=one_hot(BOOT), switch_at=at)
        labels = predict(classifier, sample(generator, request))
        print(f"{at:>9g} | {float((labels == BOOT).float().mean()):>4.0%} | {float((labels == SNEAKER).float().mean()):.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator (default: the shipped model)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"), help="Fashion-MNIST folder")
    parser.add_argument("--sources", type=int, default=8, help="real sneakers to edit from")
    parser.add_argument("--n", type=int, default=64, help="seeds per source (and per switch point)")
    parser.add_argument("--strength", type=float, default=0.6, help="edit strength")
    parser.add_argument("--parents", type=int, default=8)
    parser.add_argument("--variations", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the sampler's)")
    parser.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--only", default="edits,variations,switches", help="which tables, comma-separated")
    args = parser.parse_args()

    import torch

    from core.checkpoint import open_generator
    from core.evaluation.classifier import load_classifier

    torch.set_num_threads(max(1, torch.get_num_threads()))
    generator = open_generator(args.checkpoint, torch.device("cpu"))
    classifier = load_classifier()
    for name in args.only.split(","):
        {"edits": edits, "variations": variations, "switches": switches}[name.strip()](generator, classifier, args)


if __name__ == "__main__":
    main()
