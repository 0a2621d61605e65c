import pytest
import torch

from support import SHARED_DATA, write_idx
from core.data import DataError, DeviceBatches, load_split


def test_reads_idx_and_scales_to_minus_one_one(fake_data_dir):
    split = load_split("train", fake_data_dir)
    assert split.images.shape == (64, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.tolist()[:3] == [0, 1, 2]
    x = split.as_float()
    assert x.shape == (64, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[0, 0, 4, 4], torch.tensor(220 / 127.5 - 1))
    assert len(load_split("test", fake_data_dir)) == 20
    assert len(load_split("train", fake_data_dir, limit=10)) == 10


def test_env_var_sets_data_dir(fake_data_dir, monkeypatch):
    monkeypatch.setenv("FASHION_TUI_DATA", str(fake_data_dir))
    assert len(load_split("train", None)) == 64


def test_missing_files_name_directory_files_and_remedies(tmp_path):
    with pytest.raises(DataError) as info:
        load_split("train", tmp_path / "nowhere")
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "--data-dir" in message and "--download" in message
    assert str(tmp_path / "nowhere") in message and "\n" not in message


def test_truncated_file_is_named(fake_data_dir):
    path = fake_data_dir / "FashionMNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load_split("train", fake_data_dir)


def test_wrong_magic_is_named(fake_data_dir):
    path = fake_data_dir / "FashionMNIST/raw/train-labels-idx1-ubyte"
    write_idx(path, torch.zeros(64, dtype=torch.uint8), 2051)  # image magic on a label file
    with pytest.raises(DataError, match="train-labels-idx1-ubyte has wrong magic"):
        load_split("train", fake_data_dir)


def test_label_out_of_range_is_refused(fake_data_dir):
    write_idx(fake_data_dir / "FashionMNIST/raw/train-labels-idx1-ubyte", torch.full((64,), 12), 2049)
    with pytest.raises(DataError, match="label 12"):
        load_split("train", fake_data_dir)


def test_count_mismatch_is_refused(fake_data_dir):
    write_idx(fake_data_dir / "FashionMNIST/raw/train-labels-idx1-ubyte", torch.zeros(10), 2049)
    with pytest.raises(DataError, match="64 images but"):
        load_split("train", fake_data_dir)


def test_a_failed_download_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    """download() itself runs; only torchvision's fetch fails, as it does offline."""
    import urllib.error

    import torchvision.datasets

    class Offline:
        def __init__(self, root, train, download):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(DataError) as info:
        load_split("train", tmp_path, download_missing=True)
    message = str(info.value)
    assert message.startswith(f"download into {tmp_path} failed: ") and "name resolution" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "\n" not in message


def test_device_batches_shuffle_per_epoch_and_cover_the_split(fake_data_dir):
    split = load_split("train", fake_data_dir)
    batches = DeviceBatches(split, batch_size=16, device=torch.device("cpu"), seed=3)
    assert batches.steps_per_epoch == 4
    seen = torch.cat([y for _, y in batches.batches(0)])
    assert len(seen) == 64 and not torch.equal(seen, split.labels)  # shuffled
    assert sorted(seen.tolist()) == sorted(split.labels.tolist())
    again = torch.cat([y for _, y in batches.batches(0)])
    assert torch.equal(seen, again)  # epoch order is reproducible (resume relies on it)
    assert not torch.equal(batches.epoch_order(0), batches.epoch_order(1))
    tail = torch.cat([y for _, y in batches.batches(0, start_step=2)])
    assert torch.equal(tail, seen[32:])


def test_device_batches_shards_are_disjoint(fake_data_dir):
    split = load_split("train", fake_data_dir)
    shards = [DeviceBatches(split, 8, torch.device("cpu"), seed=1, rank=r, world_size=2).epoch_order(0) for r in range(2)]
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) == 0
    assert len(shards[0]) == len(shards[1]) == 32


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST/raw").is_dir(), reason="../shared/data not present")
def test_shared_copy_loads():
    train, test = load_split("train", SHARED_DATA), load_split("test", SHARED_DATA)
    assert len(train) == 60000 and len(test) == 10000
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert abs(train.images.float().mean().item() / 255 - 0.286) < 0.001
