"""A victim's measured cost (benchmark/engine/cost.py): one SGD step and one evaluation batch, extrapolated to a cell."""
from __future__ import annotations

import pytest
import torch

from benchmark.engine.cost import measure_model
from benchmark.presets import PRESETS


def test_measured_cost_grows_with_the_network_and_the_preset():
    cpu = torch.device("cpu")
    # 24 thousand against 11 million parameters: a busy machine cannot swap their step times
    tiny, big = (measure_model(n, PRESETS["quick"], cpu, steps=2) for n in ("tinycnn", "resnet18"))
    assert 0 < tiny.step_s < big.step_s and tiny.parameters < big.parameters
    # quick: 10 epochs of 39 steps, evaluating 10,000 test images twice and 5,000 training images once
    assert big.cell_s == pytest.approx(390 * big.step_s + 25_000 * big.eval_image_s)
    smoke = measure_model("resnet18", PRESETS["smoke"], cpu, steps=1)
    assert smoke.cell_s < big.cell_s
