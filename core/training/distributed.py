"""torchrun / DistributedDataParallel plumbing: process-group set-up and the few collectives the trainer needs.

    torchrun --nproc_per_node=N train_cli.py ...        one machine, N processes (one per GPU)
    torchrun --nnodes=M --node-rank=k --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT train_cli.py ...

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `init_distributed`
reads them (init_method "env://"), picks NCCL for CUDA and gloo for CPU, and pins each process
to GPU LOCAL_RANK. Every helper here is a no-op (returns its input) when no process group is up,
so the single-process path never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

# Long enough for rank 0 to write a checkpoint and a sample grid, or for a first torch.compile,
# while the other ranks wait in a collective.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None


def env_info() -> DistInfo:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (0 / 1 / 0 when run plainly)."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad RANK={rank} / WORLD_SIZE={world_size}")
    return DistInfo(rank, world_size, local_rank)


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _wants_cuda(device: str) -> bool:
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes: NCCL on CUDA (pinned to GPU LOCAL_RANK), gloo on CPU.

    `device` is train_cli's --device (auto, cpu, cuda, cuda:N; the GPU index is replaced by
    LOCAL_RANK). Raises ValueError with one line when the environment cannot work.
    """
    import torch.distributed as dist

    info = env_info()
    if info.world_size == 1:
        return info
    if is_initialized():
        return DistInfo(info.rank, info.world_size, info.local_rank, dist.get_backend())
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed; run without torchrun")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={info.world_size} but {', '.join(missing)} not set: launch with torchrun")
    if device.startswith("mps"):
        raise ValueError("distributed training does not support MPS; use --device cpu (gloo) or CUDA GPUs (NCCL)")
    device_id = None
    if _wants_cuda(device):
        if not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but no CUDA GPU is available")
        count = torch.cuda.device_count()
        if info.local_rank >= count:
            raise ValueError(f"process LOCAL_RANK={info.local_rank} has no GPU: this machine shows {count}; "
                             f"use --nproc_per_node={count} or fewer")
        torch.cuda.set_device(info.local_rank)
        device_id = torch.device("cuda", info.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    kwargs = {"device_id": device_id} if device_id is not None else {}
    dist.init_process_group(backend, timeout=TIMEOUT, **kwargs)
    return DistInfo(info.rank, info.world_size, info.local_rank, backend)


def shutdown_distributed() -> None:
    """Destroy the process group if one is up (safe to call twice or without one)."""
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier(device: torch.device | None = None) -> None:
    if not is_initialized():
        return
    import torch.distributed as dist

    if dist.get_backend() == "nccl" and device is not None and device.type == "cuda":
        dist.barrier(device_ids=[device.index if device.index is not None else torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """Rank src's `obj` on every rank (pickled; tensors inside travel too)."""
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks of a small float tensor (in place; returned for chaining)."""
    if is_initialized():
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
