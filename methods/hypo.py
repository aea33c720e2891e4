"""Hypocritical perturbations (Tao et al., NeurIPS 2021): error-minimizing noise against a model trained on the clean
data, fixed while the noise is made (unlike EM, whose crafting model trains on the noise)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchmark.evaluation import eval_batch
from benchmark.folding import folded
from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.presets import Preset
from benchmark.registry import register_method

from .attacks import WarmStartPGD, accuracy, batches, fast_layout, quantize, toward

# Per preset: PGD steps and step size (/255, for ε 8/255; another ε scales it). `paper`: APBench's (100 × 0.8/255,
# no random start, no augmentation while crafting); the CPU presets keep the path length above ε with fewer steps.
SCHEDULE: dict[str, tuple[int, float]] = {"smoke": (10, 1.6), "quick": (40, 0.8), "paper": (100, 0.8)}


@register_method("hypo")
@dataclass
class HypocriticalPerturbation(Method):
    """Hypocritical perturbations, L∞ 8/255: PGD lowering the true label's loss on a fixed clean-trained surrogate."""

    limits = {"steps": (0, None), "step_size": (0, None)}  # 0: the preset's
    cost = 6.0  # with the surrogate's training (shared with TAP's when both run)
    strength = Strength("eps", "amplitude", 0.5, 64.0)

    eps: float = 8.0  # L∞ radius in 1/255 steps
    steps: int = 0  # PGD steps (0: the preset's)
    step_size: float = 0.0  # in 1/255 (0: the preset's)
    arch: str = ""  # surrogate architecture (empty: the preset's victim)

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 255:
            raise ValueError(f"eps must be in (0, 255] (units of 1/255), got {self.eps}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("linf", self.eps / 255)

    def settings(self, preset: Preset) -> dict[str, Any]:
        """The effective settings at `preset` (zero-valued parameters take the preset's value)."""
        steps, step_size = SCHEDULE.get(preset.name, SCHEDULE["paper"])
        return {"eps": self.eps, "steps": self.steps or steps, "step_size": self.step_size or step_size * self.eps / 8,
                "arch": self.arch or preset.model}

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        s = self.settings(ctx.preset)
        model = fast_layout(folded(ctx.surrogate(s["arch"])))  # a copy: other methods share the surrogate
        device = next(model.parameters()).device
        # targeted at the true label: each step descends its loss, from the clean image (no random start)
        pgd = toward(lambda y: y, WarmStartPGD(model, s["eps"] / 255, s["step_size"] / 255, s["steps"]))
        x = images.float().div_(255)
        out = torch.empty_like(x)
        for sl in batches(len(x), eval_batch(device), ctx.progress, "hypo"):
            out[sl] = pgd(x[sl].to(device), labels[sl].to(device)).cpu()
        protected = quantize(images, out - x, s["eps"] / 255)
        ctx.notes.update(settings=s, surrogate_clean_acc=accuracy(model, x, labels),
                         surrogate_protected_acc=accuracy(model, protected.float().div_(255), labels))
        return protected
