"""Fashion-MNIST from a data directory, read straight from its IDX files.

Layout (torchvision's): DATA_DIR/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.
We parse the IDX files ourselves so a missing, truncated or foreign file gets a
message naming it; torchvision is imported only to download (and never on the
generation path).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

DEFAULT_DATA_DIR = "./data"
DATA_ENV = "FASHION_TUI_DATA"

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60000, "test": 10000}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: 0x0803 (ubyte, 3 dims), 0x0801 (ubyte, 1 dim)


class DataError(RuntimeError):
    """The dataset cannot be read; the message says which file and what to do."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """--data-dir, else $FASHION_TUI_DATA, else ./data."""
    return Path(data_dir or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR).expanduser()


def raw_dir(data_dir: Path) -> Path:
    return data_dir / "FashionMNIST" / "raw"


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> torch.Tensor:
    """IDX file -> uint8 tensor (N, *item_shape); DataError naming the file if it is not one."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}") from None
    except OSError as error:
        raise DataError(f"cannot read data file {path}: {error.strerror or error}") from None
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError(f"data file {path} is truncated ({len(blob)} bytes, not an IDX file)")
    (found_magic,) = struct.unpack(">i", blob[:4])
    if found_magic != magic:
        raise DataError(f"data file {path} has wrong magic number {found_magic} (expected {magic}); not a Fashion-MNIST IDX file")
    dims = struct.unpack(f">{ndim}i", blob[4:header])
    if tuple(dims[1:]) != item_shape:
        raise DataError(f"data file {path} holds items of shape {tuple(dims[1:])}, expected {item_shape}")
    expected = header + dims[0] * math.prod(item_shape)
    if len(blob) != expected:
        raise DataError(f"data file {path} is truncated or padded ({len(blob)} bytes, expected {expected})")
    data = torch.frombuffer(bytearray(blob[header:]), dtype=torch.uint8)
    return data.view(dims[0], *item_shape)


def missing_message(data_dir: Path, missing: list[Path]) -> str:
    return (
        f"Fashion-MNIST not found in {data_dir} (missing: {', '.join(p.name for p in missing)} in {raw_dir(data_dir)}). "
        f"Either pass --data-dir pointing at a folder that holds FashionMNIST/raw/ (e.g. --data-dir ../shared/data), "
        f"or add --download to fetch it into {data_dir} (needs network)."
    )


def download(data_dir: Path) -> None:
    """Fetch the original files with torchvision (the only place torchvision is used)."""
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(data_dir), train=train, download=True)
    except Exception as error:  # network errors come in many types
        raise DataError(f"download into {data_dir} failed: {error}. Copy the four IDX files into {raw_dir(data_dir)} instead.") from None


@dataclass
class FashionMNIST:
    """One split: images uint8 (N, 28, 28) and labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def as_float(self) -> torch.Tensor:
        """(N, 1, 28, 28) float32 scaled to [-1, 1]."""
        return self.images.unsqueeze(1).float().div(127.5).sub(1.0)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What a training batches: the images as_float() (N, 1, 28, 28) and the labels (N,)."""
        return self.as_float(), self.labels


def load_split(split: str = "train", data_dir=None, download_missing: bool = False, limit: int | None = None) -> FashionMNIST:
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = resolve_data_dir(data_dir)
    files = [raw_dir(root) / name for name in SPLIT_FILES[split]]
    missing = [p for p in files if not p.exists()]
    if missing and download_missing:
        download(root)
        missing = [p for p in files if not p.exists()]
    if missing:
        raise DataError(missing_message(root, missing))
    images = _read_idx(files[0], IMAGE_MAGIC, (28, 28))
    labels = _read_idx(files[1], LABEL_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(f"{files[0]} holds {len(images)} images but {files[1]} holds {len(labels)} labels")
    if len(labels) and int(labels.max()) > 9:
        raise DataError(f"data file {files[1]} holds label {int(labels.max())}; Fashion-MNIST labels are 0-9")
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"--limit must be positive, not {limit}")
        images, labels = images[:limit], labels[:limit]
    return FashionMNIST(images.clone(), labels.long())


class DeviceBatches:
    """The whole training set held as tensors on the training device; shuffled batches by index.

    The set is anything with tensors(), rows along the first dimension: a FashionMNIST split
    (images, labels), or a student's teacher pairs (core.training.pairs).
    The order of epoch e is a permutation drawn from a generator seeded with (seed, e),
    so a resumed run can rebuild it and skip to its position without saving it.
    `rank`/`world_size` give each DDP process a disjoint shard of every epoch's order.
    """

    def __init__(self, split, batch_size: int, device: torch.device, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.tensors = tuple(t.to(device) for t in split.tensors())  # e.g. (N, 1, 28, 28) in [-1, 1], (N,)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.rows = len(self.tensors[0])
        per_rank = self.rows // world_size
        self.steps_per_epoch = max(1, per_rank // batch_size)  # a split smaller than a batch is one step
        self.per_rank = per_rank

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = torch.randperm(self.rows, generator=generator)
        shard = order[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
        return shard.to(self.tensors[0].device)

    def batches(self, epoch: int, start_step: int = 0):
        """Yield a tuple of the set's tensors (images, labels) for steps start_step..steps_per_epoch-1 of this epoch."""
        order = self.epoch_order(epoch)
        size = min(self.batch_size, len(order))
        for step in range(start_step, self.steps_per_epoch):
            index = order[step * size:(step + 1) * size]
            yield tuple(t[index] for t in self.tensors)
