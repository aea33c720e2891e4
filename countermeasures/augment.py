"""Countermeasures that act per batch on the training device."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.plugins import Countermeasure
from benchmark.registry import register_countermeasure


@register_countermeasure("none")
@dataclass
class NoDefense(Countermeasure):
    """Standard training: RandomCrop(32, pad 4) + horizontal flip, which every countermeasure keeps."""
