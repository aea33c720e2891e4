"""The budget check the engine runs on every protected set (benchmark/budget.py): exact at the radius, a float
tolerance and no more, per norm, naming the image and the measured size."""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.budget import Budget, BudgetError, check_budget


def _pair(change: int, pixels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.full((3, 3, 8, 8), 100, dtype=torch.uint8)
    protected = clean.clone()
    protected[2, 0].view(-1)[:pixels] += change  # the third image, first channel, `pixels` values
    return clean, protected


def test_linf_holds_at_the_radius_and_fails_one_step_above_naming_the_image():
    check_budget("m", Budget("linf", 8 / 255), *_pair(8))
    with pytest.raises(BudgetError, match=r"'m' violates its linf budget: measured 9.000/255 on image 2, allowed 8.000/255"):
        check_budget("m", Budget("linf", 8 / 255), *_pair(9))


def test_l2_and_l0_are_measured_per_image():
    l2 = math.sqrt(4 * (10 / 255) ** 2)  # four values changed by 10/255
    check_budget("m", Budget("l2", l2), *_pair(10, pixels=4))
    with pytest.raises(BudgetError, match="l2 budget"):
        check_budget("m", Budget("l2", l2 * 0.99), *_pair(10, pixels=4))
    check_budget("m", Budget("l0", 3), *_pair(5, pixels=3))  # three pixel positions
    with pytest.raises(BudgetError, match="l0 budget"):
        check_budget("m", Budget("l0", 2), *_pair(5, pixels=3))


def test_an_unbounded_method_is_never_refused_and_an_unknown_norm_is():
    check_budget("m", Budget("none"), *_pair(200, pixels=64))
    with pytest.raises(ValueError, match="unknown norm 'linf2'; valid norms: linf, l2, l0, none"):
        Budget("linf2", 1.0)
    assert str(Budget("linf", 8 / 255)) == "L∞ ≤ 8/255" and str(Budget("l0", 1)) == "L0 ≤ 1 pixel"
