"""The trainer's side of a distributed run (core.training.distributed is the process group and its
collectives): each rank's device, one dataset download per machine, DistributedDataParallel
around the objective, and the one all-reduce per step through which the ranks agree.

Every function here is the plain single-process path when world_size is 1.
"""

from __future__ import annotations

import threading

import torch

from . import distributed
from ..data import load_split
from .state import TrainingError


def rank_device(device: torch.device, world_size: int, local_rank: int) -> torch.device:
    """The device this rank trains on: GPU local_rank (modulo the GPUs this machine has) for CUDA."""
    if world_size > 1:
        if not distributed.is_initialized():
            raise TrainingError("world_size > 1 needs a torch.distributed process group: launch with torchrun "
                                "(train_cli.py calls core.training.distributed.init_distributed)")
        if device.type == "mps":
            raise ValueError("distributed training does not support MPS; use --device cpu or CUDA GPUs")
        if device.type == "cuda":
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def load_train_split(data_dir, download: bool, limit: int | None, world_size: int, local_rank: int, device: torch.device):
    """The training split, from data_dir (downloaded first when download and it is missing)."""
    if download and world_size > 1:
        # one download per machine: local rank 0 fetches, the others wait, then read the files
        split = load_split("train", data_dir, download_missing=True, limit=limit) if local_rank == 0 else None
        distributed.barrier(device)
        return split if split is not None else load_split("train", data_dir, limit=limit)
    return load_split("train", data_dir, download_missing=download, limit=limit)


def wrap(module: torch.nn.Module, device: torch.device, world_size: int) -> torch.nn.Module:
    """DDP around the whole objective, so the step's forward (and so every gradient) goes through it.

    Every parameter gets a gradient in every step (the CFG null embedding enters through
    torch.where even when no item is dropped; tests/core/training/test_distributed.py checks each
    preset), so DDP needs no unused-parameter search; the only buffers are DDPModule's
    constant eval steps, so they are not re-broadcast each step.
    """
    if world_size > 1:
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # newer torch renamed broadcast_buffers (and warns about the old name)
        no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else "broadcast_buffers")
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                       **{no_sync: False})
    return module


def agree(packed: torch.Tensor, rank: int, world_size: int, stop: threading.Event) -> tuple[list[float], bool]:
    """(the tally's values read to the host, some rank was asked to stop), from LossTally.packed():
    loss, smoothed loss, gradient norm, first bad step.

    The trainer calls this only when a log record or a checkpoint is due, the same steps on every
    rank. In a distributed run one all-reduce averages the losses and the gradient norm and sums
    the non-finite flags and the stop requests, so a NaN on one rank or a signal that reached one
    rank makes every rank leave the loop at the same step (no rank is left waiting in a
    collective). Single-process: a plain read; the trainer checks the stop flag before each step.
    """
    if world_size == 1:
        return packed.tolist(), False
    loss, smooth, grad_norm, first_bad = packed.unbind()
    stopping = torch.tensor(1.0 if stop.is_set() else 0.0, device=packed.device)
    firsts = torch.zeros(world_size, device=packed.device)  # (world_size,): each rank fills its own slot
    firsts[rank] = first_bad
    total = distributed.all_reduce_sum(torch.cat([torch.stack([loss, smooth, grad_norm, stopping]), firsts])).tolist()
    bad = [step for step in total[4:] if step > 0]
    return [total[0] / world_size, total[1] / world_size, total[2] / world_size, min(bad, default=0.0)], total[3] > 0
