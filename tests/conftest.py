"""Shared fixtures: the real CIFAR-10 root, small real subsets, and temporary plugin registration."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark.data import ENV_DATA_ROOT, ImageSet, balanced_subset, load_dataset
from benchmark.engine.config import GridConfig
from benchmark.plugins import Context
from benchmark.presets import PRESETS
from benchmark.registry import Registry, countermeasures, methods, models


REQUIRE_DATA = "UEBENCH_REQUIRE_DATA"  # set (as .ci/run does): a missing dataset fails the tests that need it


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads the real dataset `data`, so `-m "not data"` is the tier that needs none."""
    for item in items:
        if "data_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session")
def data_root() -> str:
    root = os.environ.get(ENV_DATA_ROOT)
    if not root or not (Path(root) / "cifar-10-batches-py").is_dir():
        message = f"set {ENV_DATA_ROOT} to a folder holding cifar-10-batches-py (the real CIFAR-10)"
        if os.environ.get(REQUIRE_DATA):
            pytest.fail(message)
        pytest.skip(message)
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


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a plugin module as a third-party distribution would: a module and a dist-info folder whose
    entry_points.txt names it, on sys.path and PYTHONPATH, so this process, its spawned workers and its
    subprocesses all discover it; the registries rescan their entry points."""
    site = tmp_path / "site-packages"
    installed: list[str] = []

    def install(module: str, source: str, group: str, entry_points: str = "") -> None:
        """`entry_points`: the group's lines (`name = module:Object`); default: the module under its own name."""
        site.mkdir(exist_ok=True)
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[{group}]\n{entry_points or f'{module} = {module}'}\n")
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        installed.append(module)
        for registry in (methods, countermeasures, models):
            registry._loaded = False
            registry.errors.clear()
            registry.names()

    yield install
    for registry in (methods, countermeasures, models):
        registry.errors.clear()
        for name, obj in list(registry._entries.items()):
            if getattr(obj, "__module__", None) in installed:
                del registry._entries[name]
    for module in installed:
        sys.modules.pop(module, None)
