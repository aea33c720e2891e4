"""The plugin examples of docs/plugins.md run as written: registered, in a smoke cell, within budget."""
from __future__ import annotations

import dataclasses
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from benchmark.engine.cells import Cell
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import run_cell
from benchmark.models import create_model
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures, methods, models
from benchmark.training import train_victim

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"


@pytest.fixture(scope="module")
def examples():
    """Execute every Python block of the page (registering its plugins), then unregister them."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 3
    before = {r: set(r.names()) for r in (methods, countermeasures, models)}
    for i, block in enumerate(blocks):
        module = types.ModuleType(f"docs_plugins_{i}")  # dataclasses look their module up
        sys.modules[module.__name__] = module
        exec(compile(block, str(DOC), "exec"), module.__dict__)
    yield
    for registry, names in before.items():
        for name in set(registry.names()) - names:
            del registry._entries[name]
    for i in range(len(blocks)):
        sys.modules.pop(f"docs_plugins_{i}")


def test_the_method_and_countermeasure_examples_run_in_a_cell(examples, tmp_path, data_root):
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu",
                        method_args={"class-noise": {"eps": "4"}})
    row = run_cell(Cell("class-noise", "late-noise", 0).resolve(config), config)
    assert row["status"] == "ok" and row["budget"] == "L∞ ≤ 4/255"
    assert 3.9 / 255 < row["perturbation"]["linf"] <= 4 / 255 + 1e-6
    assert row["identity"]["countermeasure"]["settings"]["last_epochs"] == PRESETS["smoke"].epochs // 2
    assert row["method_label"] == "class-noise[eps=4]"


def test_the_victim_example_trains_and_has_a_feature_trunk(examples, cifar_small):
    model = create_model("wide-tiny", 10)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10) and model.features(torch.rand(2, 3, 32, 32)).ndim == 4
    preset = dataclasses.replace(PRESETS["smoke"], model="wide-tiny", epochs=1)
    result = train_victim(cifar_small.images, cifar_small.labels, cifar_small.images, cifar_small.labels, 10,
                          preset, countermeasures.get("none")(), 0, torch.device("cpu"))
    assert 0 <= result.final_acc <= 1
