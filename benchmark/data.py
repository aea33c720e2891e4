"""Datasets as uint8 tensors N×3×H×W: CIFAR-10/100 through torchvision, ImageNet subsets from folders."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .identity import tensor_digest
from .presets import get_preset
from .seeding import generator

DATASETS = ("cifar10", "cifar100", "imagenet-subset")
ENV_DATA_ROOT = "UEBENCH_DATA_ROOT"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable."""


class DatasetCorruptError(ValueError):
    """A dataset file is on disk but incomplete or modified."""


@dataclass
class ImageSet:
    """Images (uint8, N×3×H×W) with integer labels and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 N×3×H×W, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.images)


def user_cache_dir() -> Path:
    """Per-user cache folder of uebench (XDG_CACHE_HOME aware)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uebench"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $UEBENCH_DATA_ROOT, else the per-user cache."""
    if data_root:
        return Path(data_root).expanduser()
    if os.environ.get(ENV_DATA_ROOT):
        return Path(os.environ[ENV_DATA_ROOT]).expanduser()
    return user_cache_dir() / "data"


def load_dataset(
    name: str,
    train: bool,
    data_root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    num_classes: int = 100,
    resolution: int = 64,
) -> ImageSet:
    """Load a whole split; `num_classes` and `resolution` apply to `imagenet-subset` only."""
    root = resolve_data_root(data_root)
    if name in ("cifar10", "cifar100"):
        return _load_cifar(name, train, root, download)
    if name == "imagenet-subset":
        return load_image_folder(root / "imagenet-subset" / ("train" if train else "val"), num_classes, resolution)
    raise KeyError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


def _load_cifar(name: str, train: bool, root: Path, download: bool) -> ImageSet:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    folder = root / cls.base_folder
    if not folder.is_dir():
        if not download:
            raise _not_found(name, root, "not there; pass --download to fetch it")
        try:
            cls(str(root), train=train, download=True)
        except Exception as exc:  # offline: URLError, socket errors, ...
            raise _not_found(name, root, f"download failed: {exc}") from None
    _check_cifar_files(name, folder, (cls.train_list if train else cls.test_list) + [[cls.meta["filename"], cls.meta["md5"]]])
    ds = cls(str(root), train=train, download=False)  # the files are verified: their pickles are the published ones
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))


def _check_cifar_files(name: str, folder: Path, files: list[list[str]]) -> None:
    """Raise DatasetCorruptError unless every (file name, MD5) of `files` is in `folder` with that MD5."""
    from torchvision.datasets.utils import calculate_md5

    for filename, md5 in files:
        path = folder / filename
        if not path.is_file():
            raise DatasetCorruptError(
                f"dataset {name!r} at {folder} is incomplete: {filename} is missing; restore it, or delete "
                f"{folder} and rerun with --download"
            )
        actual = calculate_md5(str(path))
        if actual != md5:
            raise DatasetCorruptError(
                f"dataset {name!r}: {path} is corrupt (MD5 {actual}, expected {md5}: truncated or modified); "
                f"restore it, or delete {folder} and rerun with --download"
            )


def _not_found(name: str, root: Path, why: str) -> DatasetNotFoundError:
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    return DatasetNotFoundError(
        f"dataset {name!r} not found: looked for {root / folder} ({why}). "
        f"Point uebench at a folder that holds {folder}/ with --data-root PATH "
        f"or the environment variable {ENV_DATA_ROOT}=PATH."
    )


def load_image_folder(folder: str | os.PathLike, num_classes: int, resolution: int) -> ImageSet:
    """An ImageFolder tree (one sub-folder per class): the first `num_classes` classes in sorted
    order, each image resized on its short side and centre-cropped to `resolution`²."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"image folder {folder} does not exist; set --data-root or {ENV_DATA_ROOT} to a folder "
            f"that holds imagenet-subset/train and imagenet-subset/val with one sub-folder per class"
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())[:num_classes]
    if len(classes) < num_classes:
        raise DatasetNotFoundError(f"{folder} has {len(classes)} class folders, {num_classes} requested")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for path in sorted((folder / cls).iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
                continue
            with Image.open(path) as img:
                t = F.pil_to_tensor(img.convert("RGB"))
            t = F.center_crop(F.resize(t, [resolution], antialias=True), [resolution, resolution])
            images.append(t)
            labels.append(label)
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes)


def balanced_indices(labels: torch.Tensor, num_classes: int, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subset with `per_class` items of every class."""
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} images, {per_class} requested")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def poison_mask(labels: torch.Tensor, num_classes: int, ratio: float, seed: int) -> torch.Tensor:
    """Which training images carry the protection at a poisoning ratio: round(ratio × n) of each class's n
    images, drawn with the stream of `seed` for that ratio (the same images for every method and cell)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"a poisoning ratio must be in (0, 1], got {ratio}")
    mask = torch.zeros(len(labels), dtype=torch.bool)
    gen = generator(seed, f"poison-ratio/{ratio!r}")
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        mask[idx[torch.randperm(len(idx), generator=gen)[: round(ratio * len(idx))]]] = True
    return mask


def balanced_subset(data: ImageSet, per_class: int | None, seed: int) -> ImageSet:
    """A seeded subset with `per_class` images of every class (None: everything)."""
    if per_class is None:
        return data
    keep = balanced_indices(data.labels, data.num_classes, per_class, seed)
    return ImageSet(data.images[keep].contiguous(), data.labels[keep].contiguous(), data.classes)


@functools.lru_cache(maxsize=4)
def full_split(dataset: str, train: bool, data_root: str | None) -> ImageSet:
    """A whole split of the dataset, read and checked once per process (shared: callers must not modify it)."""
    return load_dataset(dataset, train, data_root)


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, data_root: str | None, preset: str) -> tuple[ImageSet, ImageSet]:
    """The preset's class-balanced train and test subsets (memoised per process)."""
    p = get_preset(preset)
    train = balanced_subset(full_split(dataset, True, data_root), p.train_per_class, p.subset_seed)
    test = balanced_subset(full_split(dataset, False, data_root), p.test_per_class, p.subset_seed)
    return train, test


@functools.lru_cache(maxsize=4)
def split_digests(dataset: str, data_root: str | None, preset: str) -> dict[str, str]:
    """SHA-256 of the preset's training and test images and labels: what a cell or artifact was made from."""
    train, test = load_splits(dataset, data_root, preset)
    return {"train": tensor_digest(train.images, train.labels), "test": tensor_digest(test.images, test.labels)}


def split_positions(dataset: str, data_root: str | None, preset: str) -> torch.Tensor:
    """Positions of the preset's training images in the dataset's training split, in their order."""
    p = get_preset(preset)
    full = full_split(dataset, True, data_root)
    if p.train_per_class is None:
        return torch.arange(len(full))
    return balanced_indices(full.labels, full.num_classes, p.train_per_class, p.subset_seed)


@functools.lru_cache(maxsize=2)
def heldout_split(dataset: str, data_root: str | None, preset: str) -> ImageSet:
    """The dataset's training images outside the preset's training subset (empty for full-set presets)."""
    p = get_preset(preset)
    full = full_split(dataset, True, data_root)
    keep = torch.zeros(len(full), dtype=torch.bool)
    if p.train_per_class is None:
        keep[:] = True
    else:
        keep[balanced_indices(full.labels, full.num_classes, p.train_per_class, p.subset_seed)] = True
    return ImageSet(full.images[~keep].contiguous(), full.labels[~keep].contiguous(), full.classes)
