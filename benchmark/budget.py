"""The threat model a method declares (`Budget`) and the check the engine runs on every protected set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .metrics import per_image_norms

TOLERANCE = 1e-6  # float slack when comparing a measured norm with its budget


@dataclass(frozen=True)
class Budget:
    """A threat model: `linf`/`l2` radius in [0,1] pixel units, `l0` pixel positions, or `none`."""

    norm: str
    eps: float = 0.0

    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2", "l0", "none")

    def __post_init__(self) -> None:
        if self.norm not in self.NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid norms: {', '.join(self.NORMS)}")

    def __str__(self) -> str:
        if self.norm == "none":
            return "unbounded (reports PSNR/SSIM)"
        if self.norm == "linf":
            return f"L∞ ≤ {self.eps * 255:g}/255"
        if self.norm == "l0":
            return f"L0 ≤ {self.eps:g} pixel{'s' if self.eps != 1 else ''}"
        return f"L2 ≤ {self.eps:.4g}"


class BudgetError(ValueError):
    """A method's saved output exceeds its declared threat model."""


def check_budget(method: str, budget: Budget, clean: torch.Tensor, protected: torch.Tensor) -> None:
    """Raise BudgetError when any image of `protected` exceeds `budget`."""
    if budget.norm == "none":
        return
    norms = per_image_norms(clean, protected)[budget.norm].float()
    worst = int(norms.argmax())
    measured = norms[worst].item()
    if measured > budget.eps + TOLERANCE:
        unit = (lambda v: f"{v * 255:.3f}/255") if budget.norm == "linf" else (lambda v: f"{v:.4f}")
        raise BudgetError(
            f"method {method!r} violates its {budget.norm} budget: measured {unit(measured)} on image {worst}, "
            f"allowed {unit(budget.eps)}"
        )

