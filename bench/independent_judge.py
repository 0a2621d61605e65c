"""A second opinion on generated items: an independent judge network, beside the shipped classifier.

    python bench/independent_judge.py CHECKPOINT [CHECKPOINT ...] --data-dir ../shared/data \
        [--device cuda] [--n-per-class 1000] [--judge-epochs 15] [--configs ddim:50:2,ddpm:250:2] [--out-dir DIR]

The project's own evaluator scores items with the classifier shipped in checkpoints/, and the
default sampling settings were chosen with it. A generator tuned to one network's features can look
better to it than it is, so this script trains a *different* network, from scratch, on the training
split (a torchvision ResNet-18 with a 3x3 stem and no max-pool, 11M parameters, crops and flips,
label smoothing; the shipped classifier is a 0.2M-parameter plain CNN) and scores the same items
with both: conditional accuracy, the Frechet distance between the judge's 512-d penultimate
features of generated and real test images, and its bias-corrected value (FD-infinity). Floors
(real train vs real test) are given for both networks at the same sample size.

Items use the seeds of `fashion-tui evaluate --seed S` (item i of class c: S + c*10^6 + i), so rows
scored by the shipped classifier equal that command's; they are sampled 1,000 at a time
(core.sampling.limits.MAX_EVAL_BATCH; each item has its own noise generator, so batching changes only speed).
A config is sampler:steps:guidance[:seed[:lo-hi|all]], e.g. ddim:50:2::21-450 (default seed 0 and the
default guidance interval); the default black level applies.

Training the judge takes about a minute on a GPU and hours on a 2-core CPU: this is a GPU tool.
Writes DIR/judge.json (every row) and the items of the first config as uint8 tensors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import core.evaluation.cli as ecli
import core.sampling.limits as limits
from core.checkpoint import load_generator
from core.data import load_split
from core.sampling.request import parse_guidance_interval
from core.evaluation.metrics import (
    MIN_ITEMS_FOR_INFINITY, _accuracy_from_predictions, floors_from_features, frechet_distance,
    frechet_distance_infinity, real_floors,
)
from core.evaluation.classifier import EvaluationError, _forward_batched, extract_features, load_classifier

torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        net = torchvision.models.resnet18(num_classes=10)
        net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.body, self.head = net, nn.Linear(512, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def augment(x, g):
    # x (B,1,28,28): random shift by up to 2 px (pad + crop) and horizontal flip
    b = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
    out = padded[:, :, dy:dy + 28, dx:dx + 28]
    flip = torch.rand(b, generator=g) < 0.5
    out = torch.where(flip.view(b, 1, 1, 1).to(x.device), out.flip(3), out)
    return out


def train_judge(device, train, test, epochs):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Judge().to(device).to(memory_format=torch.channels_last)
    x_all, y_all = train.as_float().to(device), train.labels.to(device)
    batch = min(256, len(x_all))
    steps_per_epoch = len(x_all) // batch
    total = max(1, int(epochs * steps_per_epoch))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=0.2)
    model.train()
    step = 0
    start = time.perf_counter()
    while step < total:
        perm = torch.randperm(len(x_all), generator=g).to(device)
        for i in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[i * batch:(i + 1) * batch]
            xb = augment(x_all[idx], g).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(xb), y_all[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    model.eval()
    acc, per = judge_accuracy(model, test.as_float(), test.labels)
    print(f"judge: {total} steps in {time.perf_counter() - start:.0f}s, test accuracy {100 * acc:.2f}%, "
          f"per class {[round(100 * p, 1) for p in per]}", flush=True)
    return model, acc, per


@torch.no_grad()
def judge_forward(model, images):
    device = next(model.parameters()).device
    feats, preds = [], []
    for chunk in images.split(1000):
        f = model.features(chunk.to(device).contiguous(memory_format=torch.channels_last)).float()
        feats.append(f.cpu())
        preds.append(model.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def judge_accuracy(model, images, labels):
    return _accuracy_from_predictions(judge_forward(model, images)[1], labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-per-class", type=int, default=1000)
    parser.add_argument("--judge-epochs", type=float, default=15)
    parser.add_argument("--configs", default="ddim:50:2,ddim:50:0,ddim:50:1,ddpm:250:2")
    parser.add_argument("--out-dir", default="judge-out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split (a quick check)")
    args = parser.parse_args()
    device, n_per_class, out = torch.device(args.device), args.n_per_class, Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    judge_epochs, configs, checkpoints, data_dir, limit = (args.judge_epochs, args.configs.split(","), args.checkpoints,
                                                           args.data_dir, args.limit)
    train, test = load_split("train", data_dir, limit=limit), load_split("test", data_dir, limit=limit)
    test_x = test.as_float()
    classifier = load_classifier().to(device)
    report = {"n_per_class": n_per_class, "rows": []}

    # floors at the evaluated sample size and class mix (n_per_class of each class), both scorers
    ours_floor, ours_floor_inf = (real_floors(classifier, data_dir, n_per_class) if limit is None
                                  else (math.nan, math.nan))
    judge, judge_acc, judge_per = train_judge(device, train, test, judge_epochs)
    j_test, _ = judge_forward(judge, test_x)

    def judge_train_features(indices):
        return judge_forward(judge, train.images[indices].unsqueeze(1).float().div(127.5).sub(1.0))[0]

    try:
        j_floor, j_floor_inf = floors_from_features(judge_train_features, train.labels, j_test, n_per_class)
    except EvaluationError as error:  # --limit left too few images of some class to fit a covariance
        print(f"no judge floor: {error}", flush=True)
        j_floor, j_floor_inf = math.nan, math.nan
    report.update({"ours_floor": ours_floor, "ours_floor_infinity": ours_floor_inf, "judge_test_accuracy": judge_acc,
                   "judge_per_class": judge_per, "judge_floor": j_floor, "judge_floor_infinity": j_floor_inf,
                   "judge_epochs": judge_epochs})
    print(f"floors at {n_per_class} per class: ours {ours_floor:.4f} (inf {ours_floor_inf:.4f}); "
          f"judge {j_floor:.4f} (inf {j_floor_inf:.4f})", flush=True)
    (out / "judge.json").write_text(json.dumps(report, indent=1))

    real_o = extract_features(classifier, test_x)
    generators = {path: load_generator(path, device) for path in checkpoints}
    for spec in configs:  # recipe-major, so the most important recipe is done for every model first
        sampler, steps, guidance, *rest = spec.split(":")
        seed = int(rest[0]) if rest and rest[0] else 0
        interval = (parse_guidance_interval(rest[1].replace("-", ":")) if len(rest) > 1
                    else limits.DEFAULT_GUIDANCE_INTERVAL)
        for path, generator in generators.items():
            start = time.perf_counter()
            fn = ecli.make_sample_fn(generator, float(guidance), sampler, int(steps), seed, limits.MAX_EVAL_BATCH, guidance_interval=interval)
            images = torch.cat([fn(c, n_per_class) for c in range(10)]).clamp(-1, 1)  # (10n,1,28,28)
            labels = torch.arange(10).repeat_interleave(n_per_class)
            seconds = time.perf_counter() - start
            o_feats, o_pred = _forward_batched(classifier, images)  # what fashion-tui evaluate scores
            j_feats, j_pred = judge_forward(judge, images)
            row = {"checkpoint": str(path), "hash": generator.hash, "spec": spec, "seconds": seconds}
            for name, feats, pred, real in (("ours", o_feats, o_pred, real_o), ("judge", j_feats, j_pred, j_test)):
                accuracy, per = _accuracy_from_predictions(pred, labels)
                row[name] = {"accuracy": accuracy, "per_class": per, "fd": frechet_distance(feats, real),
                             "fd_inf": frechet_distance_infinity(feats, real) if len(feats) >= MIN_ITEMS_FOR_INFINITY else None}
            report["rows"].append(row)
            o, j = row["ours"], row["judge"]
            fmt = lambda v: "-" if v is None else f"{v:.4f}"
            print(f"{Path(path).name:22s} {spec:12s} ours {100 * o['accuracy']:.2f}% worst {100 * min(o['per_class']):.1f}% "
                  f"FD {o['fd']:.4f} ({o['fd'] / ours_floor:.2f}x) inf {fmt(o['fd_inf'])} | judge {100 * j['accuracy']:.2f}% "
                  f"worst {100 * min(j['per_class']):.1f}% FD {j['fd']:.4f} ({j['fd'] / j_floor:.2f}x) inf {fmt(j['fd_inf'])} "
                  f"| {seconds:.0f}s", flush=True)
            (out / "judge.json").write_text(json.dumps(report, indent=1))
            if spec == configs[0]:
                index = checkpoints.index(path)
                torch.save(images.add(1).mul(127.5).round().to(torch.uint8), out / f"images_{index}_{Path(path).stem}.pt")


if __name__ == "__main__":
    main()
