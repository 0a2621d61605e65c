"""Headless training: `fashion-train` / `python train_cli.py`, and `fashion-train distill`.

Maps flags onto TrainConfig, drives core.training.trainer.Trainer, shows a rich progress bar, and
writes the run directory the TUI monitor reads. SIGINT/SIGTERM save a checkpoint first.

`fashion-train distill --teacher PATH --run-dir DIR ...` distils a few-step student from a generator
(core.training.distill) with the same loop, run directory and torchrun support; it writes
DIR/student.pt, the student sampler's checkpoint.

Under torchrun (`torchrun --nproc_per_node=N train_cli.py ...`) every process runs this file;
RANK/WORLD_SIZE come from the environment, DistributedDataParallel does the rest, and only
rank 0 prints and writes. Debugging: with $FASHION_TUI_DUMP_WEIGHTS_DIR set, every rank saves
its final model and EMA weights there as rank{r}.pt.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from core.cpu import prefer_passive_openmp

prefer_passive_openmp()  # before anything imports torch

from core.device import PRECISIONS
from core.model.config import DEFAULT_PRESET, DISTILL_TRAIN, PRESETS, DistillConfig, TrainConfig

DUMP_WEIGHTS_ENV = "FASHION_TUI_DUMP_WEIGHTS_DIR"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashion-train", description="Train the class-conditional diffusion model on Fashion-MNIST.",
        epilog="Several GPUs or machines: torchrun --nproc_per_node=N train_cli.py ... (DistributedDataParallel; "
               "--batch-size is per process, only rank 0 writes the run directory).")
    p.add_argument("--data-dir", default=None, help="folder holding FashionMNIST/raw/ (default $FASHION_TUI_DATA or ./data)")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST into --data-dir if missing (needs network)")
    p.add_argument("--run-dir", default="runs/default", help="where checkpoints, metrics.jsonl and sample grids go")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help=f"model recipe (default {DEFAULT_PRESET}): wide-snr (wide with min-SNR loss weighting), wide (the U-Net of the shipped model, uniform loss), fast (narrower 7x7 level, 1.25x the speed), wider (80/160 channels, 0.72x the speed; better at low guidance, not at g=2), seed (the original), tiny")
    _add_loop_args(p, TrainConfig(), "an epoch is one pass over the training images")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    p.add_argument("--posthoc-ema", default=None, metavar="SIGMA[,SIGMA...]",
                   help="track power-function EMA profiles of these relative lengths (e.g. 0.05,0.10; each in (0, 0.2887)) "
                        "and snapshot them with every checkpoint into RUN_DIR/posthoc/, so that "
                        "`python -m core.training.export RUN_DIR --sigma-rel X` can rebuild an EMA of any length after "
                        "training (Karras et al. 2024); a resumed run keeps the profiles it tracks")
    _add_quality_arg(p, "the default sampler")
    return p


def _add_loop_args(p: argparse.ArgumentParser, defaults: TrainConfig, epoch: str) -> None:
    """The flags of the training loop itself, which a distillation shares (with its own defaults)."""
    p.add_argument("--epochs", type=int, default=defaults.epochs, help=f"default {defaults.epochs}; {epoch}")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process; global batch = this x world size")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"AdamW peak learning rate (default {defaults.lr:g})")
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay)
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (default: where it pays, a run of 3 epochs or more with a "
                        "working compiler; a failed compilation falls back to eager after one line)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default: bf16 autocast where the device computes bf16 natively, else fp32), bf16 or fp32")
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps between checkpoints (also one per epoch)")
    p.add_argument("--keep", type=int, default=defaults.keep_checkpoints, help="how many checkpoints to keep")
    p.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between metrics.jsonl lines")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="also write TensorBoard event files (default folder: tb/ in --run-dir): the loss, learning rate, "
                        "gradient norm and images/s at each log record, the quality probe and the sample grid at each "
                        "epoch's end, the configs; needs the extra: pip install -e \".[tensorboard]\"")


def _add_quality_arg(p: argparse.ArgumentParser, sampler: str) -> None:
    p.add_argument("--quality-per-class", type=int, default=None, metavar="N",
                   help=f"items of each class the quality probe samples ({sampler}) and scores with the shipped classifier "
                        "at each epoch's end, into quality.jsonl (default: as many as cost a tenth of an epoch, at most 20; "
                        "0 turns it off; it needs the test split in --data-dir)")


def build_distill_parser() -> argparse.ArgumentParser:
    from core.sampling.limits import DEFAULT_STEPS, STUDENT

    p = argparse.ArgumentParser(
        prog="fashion-train distill",
        description="Distil a few-step student from a generator: the teacher draws pairs (its items from seeded noise, "
                    "at guidance 0-4, single classes and two-class mixes), the student learns to draw them in 1-4 calls "
                    "(core.training.distill). Writes RUN_DIR/student.pt: load it beside the teacher as NAME-student.pt, "
                    "or with --student PATH, and sample with --sampler student.",
        epilog="Several GPUs: torchrun --nproc_per_node=N train_cli.py distill ... (rank r draws pair shards r, r+N, ...).")
    p.add_argument("--teacher", default=None, metavar="PATH", help="the generator to distil (default: the shipped model)")
    p.add_argument("--run-dir", default="runs/student", help="where the pairs, checkpoints, metrics.jsonl and student.pt go")
    p.add_argument("--pairs", type=int, default=DistillConfig.pairs, help=f"teacher pairs to learn from (default {DistillConfig.pairs})")
    p.add_argument("--shard-size", type=int, default=DistillConfig.shard_size, help="pairs per file in RUN_DIR/pairs")
    p.add_argument("--perceptual", type=float, default=DistillConfig.perceptual, metavar="LAMBDA",
                   help=f"weight of the classifier-feature distance beside the pixel error (default {DistillConfig.perceptual:g}; 0 = pixels alone)")
    p.add_argument("--classifier", default=None, metavar="PATH",
                   help="the classifier whose features the perceptual term compares (default: the shipped one)")
    p.add_argument("--init", default=None, metavar="PATH",
                   help="start from this student of the teacher (a student.pt, a shipped NAME-student.pt) instead of the "
                        "teacher's weights: go on distilling it, on these pairs")
    p.add_argument("--rollout", type=float, default=DistillConfig.rollout_share, metavar="SHARE",
                   help=f"share of the items trained where the student's own first call puts its second (default "
                        f"{DistillConfig.rollout_share:g}; 0 = all on the pairs' paths)")
    p.add_argument("--data-dir", default=None, help="folder holding FashionMNIST/raw/ (the quality probe's test split)")
    _add_loop_args(p, DISTILL_TRAIN, "an epoch is one pass over the pairs")
    _add_quality_arg(p, f"the student sampler, {DEFAULT_STEPS[STUDENT]} steps")
    return p


def check_args(args) -> str | None:
    for name in ("epochs", "batch_size", "checkpoint_every", "keep", "log_every", "pairs", "shard_size"):
        if getattr(args, name, 1) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if not args.lr > 0:
        return "--lr must be positive"
    if getattr(args, "limit", None) is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.quality_per_class is not None and args.quality_per_class < 0:
        return "--quality-per-class must be 0 (off) or more"
    if not 0 <= args.ema_decay < 1:
        return "--ema-decay must be in [0, 1)"
    if not 0 <= getattr(args, "perceptual", 0.0) < float("inf"):
        return "--perceptual must be 0 or more"
    if not 0 <= getattr(args, "rollout", 0.0) <= 1:
        return "--rollout must be in [0, 1]"
    if args.tensorboard is not None:
        from core.training.tensorboard import missing

        if problem := missing():
            return problem
    if getattr(args, "posthoc_ema", None) is not None:
        # imports torch, so only when the flag is given
        from core.training.posthoc_ema import parse_sigma_rels

        try:
            parse_sigma_rels(args.posthoc_ema)
        except ValueError as error:
            return f"--posthoc-ema: {error}"
    return None


def posthoc_sigma_rels(text: str | None) -> tuple[float, ...]:
    """--posthoc-ema's profiles (already checked by check_args); () without the flag."""
    if text is None:
        return ()
    from core.training.posthoc_ema import parse_sigma_rels

    return parse_sigma_rels(text)


def describe_quality(record: dict) -> str:
    """One line for a quality.jsonl record: accuracy, its worst class, KID and what the probe cost."""
    from core.classes import CLASS_NAMES

    per_class = [(v, name) for v, name in zip(record["per_class_accuracy"], CLASS_NAMES) if v is not None]
    worst = min(per_class) if per_class else None
    cost = f" ({100 * record['cost']:.0f}% of the training time since the last)" if record.get("cost") else ""
    return (f"epoch {record['epoch']} quality: accuracy {100 * record['accuracy']:.1f}%"
            + (f" (worst {worst[1]} {100 * worst[0]:.0f}%)" if worst else "")
            + f", KID {record['kid']:.4f}, {record['items']} items in {record['seconds']:.1f} s{cost}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    distilling = argv[:1] == ["distill"]
    args = (build_distill_parser() if distilling else build_parser()).parse_args(argv[1:] if distilling else argv)
    problem = check_args(args)
    if problem:
        print(f"fashion-train: error: {problem}", file=sys.stderr)
        return 2
    return drive(args, distill_trainer if distilling else data_trainer)


def loop_config(args, defaults: TrainConfig = TrainConfig(), **fields) -> TrainConfig:
    """The TrainConfig the loop flags (_add_loop_args) ask for, over `defaults`."""
    from dataclasses import replace

    return replace(defaults, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                   ema_decay=args.ema_decay, seed=args.seed, checkpoint_every=args.checkpoint_every,
                   keep_checkpoints=args.keep, log_every=args.log_every, device=args.device, compile=args.compile,
                   precision=args.precision, max_steps=args.max_steps, **fields)


def data_trainer(args, **options):
    """fashion-train's Trainer on Fashion-MNIST, and its quality probe (rank 0, unless --quality-per-class 0)."""
    from core.training.trainer import Trainer

    config = loop_config(args, limit=args.limit, posthoc_ema=posthoc_sigma_rels(args.posthoc_ema))
    return Trainer(args.run_dir, config, data_dir=args.data_dir, resume=args.resume, download=args.download,
                   preset=args.preset, quality=quality_probe(args, options["rank"]), **options)


def distill_trainer(args, **options):
    """fashion-train distill's StudentTrainer: the teacher and the classifier (for the perceptual term and
    the probe, which scores the student sampler) loaded on the training device."""
    from core.checkpoint import default_checkpoint, load_generator
    from core.device import pick_device
    from core.evaluation.classifier import EvaluationError, load_classifier
    from core.sampling.limits import STUDENT
    from core.training.distill import StudentTrainer
    from core.training.ranks import rank_device

    device = rank_device(pick_device(args.device), options["world_size"], int(os.environ.get("LOCAL_RANK", options["rank"])))
    teacher = load_generator(args.teacher or default_checkpoint(), device)
    features = None
    if args.perceptual:
        try:
            features = load_classifier(args.classifier).to(device)
        except EvaluationError as error:
            raise ValueError(f"the perceptual term needs the classifier: {error} (or --perceptual 0)") from None
    config = DistillConfig(pairs=args.pairs, shard_size=args.shard_size, perceptual=args.perceptual, rollout_share=args.rollout)
    return StudentTrainer(args.run_dir, loop_config(args, DISTILL_TRAIN), config, teacher, features, init=args.init,
                          resume=args.resume,
                          quality=quality_probe(args, options["rank"], sampler=STUDENT), **options)


def quality_probe(args, rank: int, **settings):
    """The quality probe rank 0 runs at each epoch's end, or None (--quality-per-class 0, other ranks)."""
    if args.quality_per_class == 0 or rank != 0:
        return None
    from core.evaluation.probe import QualityProbe

    return QualityProbe(args.data_dir, args.quality_per_class, classifier=getattr(args, "classifier", None), **settings)


def drive(args, make_trainer) -> int:
    """Build the trainer (make_trainer(args, on_event=, rank=, world_size=)), show its progress, stop it
    cleanly on SIGINT/SIGTERM, and say where everything went: the one driver of both commands."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from core.checkpoint import CheckpointError
    from core.data import DataError
    from core.training.distributed import env_info, init_distributed, shutdown_distributed
    from core.training.state import TrainingError

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True, soft_wrap=True)  # one-line messages stay one line in logs
    try:
        dist_info = env_info()
    except ValueError as error:
        console.print(f"fashion-train: error: {error}", markup=False, highlight=False)
        return 2
    rank, world_size = dist_info.rank, dist_info.world_size
    tag = f"[rank {rank}] " if world_size > 1 else ""
    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} img/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=args.no_progress or rank != 0,
    )
    task = progress.add_task("train", total=None, epoch="-", loss="-", rate="-")

    def on_event(event):
        if rank != 0:
            return
        d = event.data
        if event.kind == "start":
            progress.update(task, total=d["total_steps"], completed=event.step)
            console.print(f"training on {d['device']} ({d['parameters'] / 1e6:.2f}M parameters), "
                          f"global batch {d['global_batch']} = {d['global_batch'] // max(1, d['world_size'])} x {d['world_size']} process(es), "
                          f"{d['steps_per_epoch']} steps/epoch, run dir {d['run_dir']}")
            console.print(f"precision {d['precision']} ({d['precision_reason']}); torch.compile {d['compile']}",
                          markup=False, highlight=False)
        elif event.kind == "notice":
            console.print(f"fashion-train: note: {d['message']}", markup=False, highlight=False)
        elif event.kind == "log":
            progress.update(task, completed=d["step"], epoch=f"{d['epoch']:.2f}", loss=f"{d['loss_smooth']:.4f}", rate=f"{d['images_per_sec']:.0f}")
            if args.no_progress and d["step"] % (args.log_every * 10) == 0:
                console.print(f"step {d['step']}/{d['total_steps']} epoch {d['epoch']:.2f} loss {d['loss_smooth']:.4f} "
                              f"{d['images_per_sec']:.0f} img/s eta {d['eta_sec'] / 60:.1f} min")
        elif event.kind == "samples":
            console.print(f"epoch {event.epoch} samples: {d['path']}")
        elif event.kind == "quality":
            console.print(describe_quality(d), markup=False, highlight=False)
        elif event.kind == "pairs":
            progress.update(task, total=d["total"], completed=d["done"], epoch="pairs", loss="-", rate=f"{d['pairs_per_sec']:.1f}")
            if args.no_progress or d["done"] == d["total"]:
                console.print(f"teacher pairs {d['done']}/{d['total']} ({d['pairs_per_sec']:.1f} pairs/s)", markup=False)

    trainer, tensorboard = None, None
    try:
        if args.tensorboard is not None and rank == 0:
            from core.training.tensorboard import TensorBoardLog

            tensorboard = TensorBoardLog(args.tensorboard)
        if world_size > 1:
            init_distributed(args.device)
        with progress:
            trainer = make_trainer(args, on_event=on_event, rank=rank, world_size=world_size, tensorboard=tensorboard)
            if tensorboard is not None:
                console.print(f"TensorBoard: tensorboard --logdir {tensorboard.log_dir}", markup=False, highlight=False)

            for reason in getattr(trainer, "resume_skipped", []):
                console.print(f"fashion-train: warning: skipped {reason}", markup=False, highlight=False)

            def handle_signal(signum, frame):
                trainer.stop(signal.Signals(signum).name)

            signal.signal(signal.SIGINT, handle_signal)
            signal.signal(signal.SIGTERM, handle_signal)
            result = trainer.run()
            dump_dir = os.environ.get(DUMP_WEIGHTS_ENV)
            if dump_dir:
                trainer.dump_weights(dump_dir)
    except (DataError, CheckpointError, TrainingError, ValueError) as error:
        console.print(f"{tag}fashion-train: error: {error}", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C before the handler was installed
        if rank == 0:
            console.print("fashion-train: interrupted before training started; nothing was written")
        return 130
    finally:
        if trainer is not None:
            trainer.close()  # first: DDP holds the process group
        shutdown_distributed()
    if rank == 0:
        if result["outcome"] == "stopped":
            console.print(f"stopped by {result['reason']} at step {result['step']}; checkpoint saved: {result['checkpoint']} "
                          f"(continue with --resume --run-dir {args.run_dir})", markup=False, highlight=False)
        else:
            console.print(f"finished at step {result['step']} in {result['wall_time_sec'] / 60:.1f} min", markup=False)
        console.print(f"checkpoint: {result['checkpoint']}", markup=False, highlight=False)
        console.print(f"metrics:    {result['metrics']}", markup=False, highlight=False)
        if result.get("student"):
            console.print(f"student:    {result['student']} (beside the teacher as NAME-student.pt, or --student PATH; "
                          f"sample with --sampler student)", markup=False, highlight=False)
    return 130 if result["outcome"] == "stopped" else 0


if __name__ == "__main__":
    sys.exit(main())
