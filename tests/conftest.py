"""Shared fixtures: the real CIFAR-10 root, small real subsets, and temporary plugin registration."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmark.data import ENV_DATA_ROOT, ImageSet, balanced_subset, load_dataset
from benchmark.plugins import Context
from benchmark.presets import PRESETS
from benchmark.registry import Registry
from benchmark.runner import GridConfig


@pytest.fixture(scope="session")
def data_root() -> str:
    root = os.environ.get(ENV_DATA_ROOT)
    if not root or not (Path(root) / "cifar-10-batches-py").is_dir():
        pytest.fail(f"set {ENV_DATA_ROOT} to a folder holding cifar-10-batches-py (the real CIFAR-10)")
    return root


@pytest.fixture(scope="session")
def cifar_small(data_root: str) -> ImageSet:
    """200 real CIFAR-10 training images, 20 per class."""
    return balanced_subset(load_dataset("cifar10", True, data_root, download=False), 20, seed=0)


@pytest.fixture(scope="session")
def smoke_config(tmp_path_factory, data_root: str) -> GridConfig:
    """The smoke preset on the CPU with one artifact cache for the whole session, so each protected
    set and surrogate is generated once however many tests read it."""
    return GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path_factory.mktemp("cache")), device="cpu")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(torch.device("cpu"), seed=0, preset=PRESETS["smoke"], num_classes=10, cache_dir=tmp_path)


@pytest.fixture
def temp_plugin():
    """Register a plugin for one test, then remove it."""
    added: list[tuple[Registry, str]] = []

    def register(registry: Registry, name: str, cls):
        registry.register(name)(cls)
        added.append((registry, name))
        return cls

    yield register
    for registry, name in added:
        registry._entries.pop(name, None)
