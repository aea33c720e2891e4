"""The reference row: the unmodified training set."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.plugins import Budget, Context, Method
from benchmark.registry import register_method


@register_method("clean")
@dataclass
class Clean(Method):
    """Unmodified training set: the reference row of every leaderboard."""

    cost = 0.0

    budget = Budget("linf", 0.0)

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        return images.clone()
