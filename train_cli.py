"""Headless training: `fashion-train` / `python train_cli.py`.

Maps flags onto TrainConfig, drives core.training.trainer.Trainer, shows a rich progress bar, and
writes the run directory the TUI monitor reads. SIGINT/SIGTERM save a checkpoint first.

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
from core.model.config import DEFAULT_PRESET, PRESETS, TrainConfig

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
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="per process; global batch = this x world size")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    p.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (default: where it pays, a run of 3 epochs or more with a "
                        "working compiler; a failed compilation falls back to eager after one line)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default: bf16 autocast where the device computes bf16 natively, else fp32), bf16 or fp32")
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every, help="steps between checkpoints (also one per epoch)")
    p.add_argument("--keep", type=int, default=TrainConfig.keep_checkpoints, help="how many checkpoints to keep")
    p.add_argument("--log-every", type=int, default=TrainConfig.log_every, help="steps between metrics.jsonl lines")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    p.add_argument("--posthoc-ema", default=None, metavar="SIGMA[,SIGMA...]",
                   help="track power-function EMA profiles of these relative lengths (e.g. 0.05,0.10; each in (0, 0.2887)) "
                        "and snapshot them with every checkpoint into RUN_DIR/posthoc/, so that "
                        "`python -m core.training.export RUN_DIR --sigma-rel X` can rebuild an EMA of any length after "
                        "training (Karras et al. 2024); a resumed run keeps the profiles it tracks")
    p.add_argument("--quality-per-class", type=int, default=None, metavar="N",
                   help="items of each class the quality probe samples and scores with the shipped classifier at each "
                        "epoch's end, into quality.jsonl (default: as many as cost a tenth of an epoch, at most 20; "
                        "0 turns it off; it needs the test split in --data-dir)")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="also write TensorBoard event files (default folder: tb/ in --run-dir): the loss, learning rate, "
                        "gradient norm and images/s at each log record, the quality probe and the sample grid at each "
                        "epoch's end, the configs; needs the extra: pip install -e \".[tensorboard]\"")
    return p


def check_args(args) -> str | None:
    for name in ("epochs", "batch_size", "checkpoint_every", "keep", "log_every"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if not args.lr > 0:
        return "--lr must be positive"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.quality_per_class is not None and args.quality_per_class < 0:
        return "--quality-per-class must be 0 (off) or more"
    if not 0 <= args.ema_decay < 1:
        return "--ema-decay must be in [0, 1)"
    if args.tensorboard is not None:
        from core.training.tensorboard import missing

        if problem := missing():
            return problem
    if args.posthoc_ema is not None:
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
    args = build_parser().parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"fashion-train: error: {problem}", file=sys.stderr)
        return 2

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from core.checkpoint import CheckpointError
    from core.data import DataError
    from core.training.distributed import env_info, init_distributed, shutdown_distributed
    from core.training.trainer import Trainer
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
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, seed=args.seed, limit=args.limit, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep, log_every=args.log_every, device=args.device, compile=args.compile,
        precision=args.precision, max_steps=args.max_steps, posthoc_ema=posthoc_sigma_rels(args.posthoc_ema),
    )
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

    trainer, quality, tensorboard = None, None, None
    if args.quality_per_class != 0 and rank == 0:
        from core.evaluation.probe import QualityProbe

        quality = QualityProbe(args.data_dir, args.quality_per_class)
    try:
        if args.tensorboard is not None and rank == 0:
            from core.training.tensorboard import TensorBoardLog

            tensorboard = TensorBoardLog(args.tensorboard)
        if world_size > 1:
            init_distributed(args.device)
        with progress:
            trainer = Trainer(args.run_dir, config, data_dir=args.data_dir, resume=args.resume, download=args.download,
                              on_event=on_event, preset=args.preset, rank=rank, world_size=world_size, quality=quality,
                              tensorboard=tensorboard)
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
    return 130 if result["outcome"] == "stopped" else 0


if __name__ == "__main__":
    sys.exit(main())
