"""Targeted adversarial poisoning (Fowl et al., NeurIPS 2021)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchattacks

from benchmark.evaluation import eval_batch
from benchmark.folding import folded
from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.presets import Preset
from benchmark.registry import register_method
from benchmark.training import random_crop_flip

from .attacks import accuracy, batches, fast_layout, quantize, toward

# Per preset: PGD steps, step size (/255, for ε 8/255; another ε scales it) and restarts. The paper: 250 steps, 8 restarts.
SCHEDULE: dict[str, tuple[int, float, int]] = {"smoke": (10, 2.0, 1), "quick": (40, 1.0, 1), "paper": (250, 0.5, 8)}


@register_method("tap")
@dataclass
class TargetedAdversarialPoisoning(Method):
    """Targeted adversarial poisoning, L∞ 8/255: PGD on a clean surrogate towards label (y+1) mod C."""

    limits = {"step_size": (0, None), "shift": (0, None)}  # step 0: the preset's

    cost = 11.0  # with the surrogate's training
    strength = Strength("eps", "amplitude", 0.5, 64.0)
    # 2: crop-and-flip inside every PGD step (`augment`), as the official code by default; 3: a channels_last
    # surrogate, PGD in evaluation-sized chunks (speed; each chunk draws its own crops, so the draws differ)
    version = "4"  # 4: the surrogate's batch norms folded into its convolutions (speed; rounding differs)

    eps: float = 8.0  # L∞ radius in 1/255 steps
    steps: int = 0  # PGD steps (0: the preset's)
    step_size: float = 0.0  # in 1/255 (0: the preset's)
    restarts: int = 0  # random restarts, the lowest target loss wins per image (0: the preset's)
    shift: int = 1  # target label = (y + shift) mod C
    arch: str = ""  # surrogate architecture (empty: the preset's victim)
    augment: bool = True  # each PGD step sees a random 4-px shift and flip of the image (the official `paugment`)

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 255:
            raise ValueError(f"eps must be in (0, 255] (units of 1/255), got {self.eps}")
        if self.steps < 0 or self.restarts < 0:
            raise ValueError(f"steps and restarts must be ≥ 0, got {self.steps}, {self.restarts}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("linf", self.eps / 255)

    def settings(self, preset: Preset) -> dict[str, Any]:
        """The effective settings at `preset` (zero-valued parameters take the preset's value)."""
        steps, step_size, restarts = SCHEDULE.get(preset.name, SCHEDULE["paper"])
        return {
            "eps": self.eps, "steps": self.steps or steps, "step_size": self.step_size or step_size * self.eps / 8,
            "restarts": self.restarts or restarts, "shift": self.shift, "arch": self.arch or preset.model,
            "augment": self.augment,
        }

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        s = self.settings(ctx.preset)
        if self.shift % ctx.num_classes == 0:
            raise ValueError(f"shift {self.shift} maps every label to itself with {ctx.num_classes} classes")
        model = fast_layout(folded(ctx.surrogate(s["arch"])))  # a copy: other methods share the surrogate
        device = next(model.parameters()).device
        c = ctx.num_classes
        attacked = _Augmented(model, ctx.generator("tap/augment", device)) if s["augment"] else model
        pgd = toward(lambda y: (y + self.shift) % c, torchattacks.PGD(attacked, s["eps"] / 255, s["step_size"] / 255, s["steps"]))
        x = images.float().div_(255)
        target = (labels + self.shift) % c
        best = x.clone()
        best_loss = torch.full((len(x),), float("inf"))
        with ctx.fork_rng("tap/start"):  # torchattacks draws its random start from the global RNG
            for _ in ctx.progress(range(s["restarts"]), desc="tap restarts", leave=False):
                for sl in batches(len(x), eval_batch(device), ctx.progress, "tap"):
                    adv = pgd(x[sl].to(device), labels[sl].to(device))
                    with torch.no_grad():
                        loss = F.cross_entropy(model(adv), target[sl].to(device), reduction="none").cpu()
                    better = loss < best_loss[sl]
                    best[sl][better] = adv.cpu()[better]
                    best_loss[sl] = torch.minimum(loss, best_loss[sl])
        protected = quantize(images, best - x, s["eps"] / 255)
        ctx.notes.update(
            settings=s,
            surrogate_train_acc=accuracy(model, x, labels),  # on the images it was trained on
            target_success=accuracy(model, protected.float().div_(255), target),
        )
        return protected


class _Augmented(torch.nn.Module):
    """`model` behind a fresh random crop-and-flip of every batch it sees (differentiable: a gather)."""

    def __init__(self, model: torch.nn.Module, gen: torch.Generator) -> None:
        super().__init__()
        self.model, self.gen = model, gen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(random_crop_flip(x, self.gen))
