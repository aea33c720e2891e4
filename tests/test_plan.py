"""A grid's plan (benchmark/engine/plan.py): estimates spread over the pieces run at once, grouped by cost class."""
from __future__ import annotations

import pytest

from benchmark.engine.plan import Plan


def _plan() -> Plan:
    return Plan(sets={("em", 0): 120.0, ("ops", 0): 0.0}, prepares={"diffusion": 60.0, "none": 0.0},
                cells={"em/none": 30.0, "em/adv_train": 300.0, "ops/none": 30.0}, victim_s={"fastcnn": 30.0},
                cached=1, cost_class={("em", 0): "set:em", ("ops", 0): "set:ops", "diffusion": "prepare:diffusion",
                                      "em/none": "cell:none/fastcnn", "ops/none": "cell:none/fastcnn",
                                      "em/adv_train": "cell:training/fastcnn"})


def test_spreading_divides_every_estimate_and_keeps_the_rest():
    spread = _plan().spread(2)
    assert spread.sets == {("em", 0): 60.0, ("ops", 0): 0.0} and spread.prepares["diffusion"] == 30.0
    assert spread.cells["em/adv_train"] == 150.0 and spread.slots == 2
    assert spread.victim_s == {"fastcnn": 30.0} and spread.cached == 1  # measured, not shared out


def test_classes_sum_each_cost_class_and_count_its_pieces():
    classes = _plan().classes()
    assert classes["cell:none/fastcnn"] == ("cell", 60.0, 2)
    assert classes["cell:training/fastcnn"] == ("cell", 300.0, 1)
    assert classes["set:em"] == ("artifact", 120.0, 1) and classes["prepare:diffusion"] == ("artifact", 60.0, 1)
    assert classes["artifact"] == ("artifact", 0.0, 1)  # a piece without a class falls into its kind's own
    assert sum(seconds for _, seconds, _ in classes.values()) == pytest.approx(540.0)
