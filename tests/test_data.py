"""Data loading: real CIFAR-10, generated CIFAR-100 and image folders, subsets, missing data."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.data import (
    DatasetCorruptError,
    DatasetNotFoundError,
    balanced_subset,
    load_dataset,
)


def test_cifar10_is_the_real_dataset_as_uint8(data_root):
    train = load_dataset("cifar10", True, data_root, download=False)
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    means = train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.49140, 0.48216, 0.44653]), atol=1e-4)


def test_balanced_subset_is_seeded_and_balanced(data_root):
    full = load_dataset("cifar10", False, data_root, download=False)
    a, b, c = (balanced_subset(full, 30, seed) for seed in (0, 0, 1))
    assert torch.bincount(a.labels).tolist() == [30] * 10
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="1001 requested"):
        balanced_subset(full, 1001, 0)


def test_missing_dataset_names_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", True, tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--data-root" in message and "UEBENCH_DATA_ROOT" in message


def test_a_truncated_batch_file_is_reported_as_corrupt_and_nothing_is_downloaded(tmp_path, data_root, monkeypatch):
    source = Path(data_root) / "cifar-10-batches-py"
    copy = tmp_path / "cifar-10-batches-py"
    copy.mkdir()
    for f in source.iterdir():
        (copy / f.name).symlink_to(f)
    (copy / "data_batch_3").unlink()
    (copy / "data_batch_3").write_bytes((source / "data_batch_3").read_bytes()[:1000])
    monkeypatch.setattr("torchvision.datasets.CIFAR10.download", lambda self: pytest.fail("downloaded"))
    with pytest.raises(DatasetCorruptError, match=r"data_batch_3 is corrupt \(MD5 .*truncated or modified"):
        load_dataset("cifar10", True, tmp_path)
    (copy / "data_batch_3").unlink()
    with pytest.raises(DatasetCorruptError, match="incomplete: data_batch_3 is missing"):
        load_dataset("cifar10", True, tmp_path)


def test_cifar100_code_path_on_generated_files(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / split, "wb") as f:
            pickle.dump({"data": data, "fine_labels": [i % 100 for i in range(n)]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    # Generated files have other MD5s than the published ones.
    monkeypatch.setattr(CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args: True)
    monkeypatch.setattr("benchmark.data._check_cifar_files", lambda *args: None)
    train = load_dataset("cifar100", True, tmp_path, download=False)
    assert train.images.shape == (40, 3, 32, 32) and train.num_classes == 100
    assert train.labels.tolist() == [i % 100 for i in range(40)]


def test_imagenet_subset_from_image_folder(tmp_path):
    for split in ("train", "val"):
        for cls, colour in (("a_cls", (255, 0, 0)), ("b_cls", (0, 0, 255)), ("c_cls", (0, 255, 0))):
            d = tmp_path / "imagenet-subset" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40 + i * 10, 30), colour).save(d / f"{i}.png")
    data = load_dataset("imagenet-subset", True, tmp_path, num_classes=2, resolution=16)
    assert data.images.shape == (6, 3, 16, 16) and data.classes == ["a_cls", "b_cls"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.images[0, 0].float().mean() > 250 and data.images[3, 2].float().mean() > 250
    with pytest.raises(DatasetNotFoundError, match="4 requested"):
        load_dataset("imagenet-subset", True, tmp_path, num_classes=4, resolution=16)
