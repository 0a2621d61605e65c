"""python -m core.training.export RUN_DIR --out PATH [--sigma-rel X] [--step N] [--fp32]

A sampling checkpoint (core.checkpoint.export_generator: the configs and EMA weights, 16-bit unless
--fp32) from a training run:

  --sigma-rel X  the EMA of relative length X reconstructed from the run's post-hoc EMA snapshots
                 (core.training.posthoc_ema; the run trained with --posthoc-ema), at the newest
                 snapshot or the newest at or before --step; the file records posthoc_sigma_rel X
  otherwise      the classic `ema` of the newest training checkpoint, or the newest at or before --step

Errors are one line on stderr and exit code 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import checkpoint as ckpt
from .posthoc_ema import check_sigma_rel, reconstruct
from .rundir import CHECKPOINTS, list_checkpoints, step_of

PROG = "python -m core.training.export"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Write a sampling checkpoint from a training run's EMA or post-hoc EMA.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory (holds checkpoints/ and, with --posthoc-ema, posthoc/)")
    p.add_argument("--out", required=True, metavar="PATH", help="the sampling checkpoint to write (e.g. runs/mine/ema-0.10.pt)")
    p.add_argument("--sigma-rel", type=float, default=None, metavar="X",
                   help="reconstruct the post-hoc EMA of this relative length (0 < X < 0.2887) from the run's snapshots")
    p.add_argument("--step", type=int, default=None, metavar="N",
                   help="use the newest checkpoint or snapshot at or before step N (default: the newest)")
    p.add_argument("--fp32", action="store_true", help="keep 32-bit weights (default: 16-bit, as the shipped model)")
    return p


def posthoc_source(run_dir: Path, sigma_rel: float, step: int | None) -> tuple[dict, str]:
    """(what export_generator writes from, a few words on it) for the reconstructed EMA."""
    rebuilt = reconstruct(run_dir, sigma_rel, step)
    source = {**rebuilt.header, "step": rebuilt.step, "ema": rebuilt.weights, "posthoc_sigma_rel": rebuilt.sigma_rel}
    ckpt.check_weights(source, "ema", f"the post-hoc EMA of {run_dir}")
    return source, (f"post-hoc EMA sigma_rel {rebuilt.sigma_rel:g} at step {rebuilt.step}, "
                    f"from {rebuilt.sources} snapshot profiles")


def checkpoint_source(run_dir: Path, step: int | None) -> tuple[dict, str]:
    """(what export_generator writes from, a few words on it) for a training checkpoint's classic EMA."""
    paths = list_checkpoints(run_dir)
    if not paths:
        raise ValueError(f"no checkpoints in {run_dir / CHECKPOINTS}")
    if step is not None:
        first, paths = step_of(paths[0]), [p for p in paths if step_of(p) <= step]
        if not paths:
            raise ValueError(f"no checkpoint at or before step {step} in {run_dir / CHECKPOINTS} (the first kept is at step {first})")
    data = ckpt.read_checkpoint(paths[-1])
    if "ema" not in data:
        raise ckpt.CheckpointError(f"{paths[-1]} is not a usable checkpoint: it has no EMA weights")
    ckpt.check_weights(data, "ema", paths[-1])
    return data, f"the EMA of {paths[-1]}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir, out = Path(args.run_dir), Path(args.out)
    try:
        if not run_dir.is_dir():
            raise ValueError(f"run directory {run_dir} does not exist")
        if args.step is not None and args.step < 1:
            raise ValueError(f"--step must be at least 1, not {args.step}")
        if out.is_dir():
            raise ValueError(f"--out {out} is a directory; name the file to write")
        if args.sigma_rel is not None:
            check_sigma_rel(args.sigma_rel)
            source, what = posthoc_source(run_dir, args.sigma_rel, args.step)
        else:
            source, what = checkpoint_source(run_dir, args.step)
        ckpt.export_generator(source, out, half=not args.fp32)
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {what} ({'32' if args.fp32 else '16'}-bit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
