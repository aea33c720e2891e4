"""PGD as the surrogate-based methods use it: torchattacks' targeted PGD, warm-started, batched."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torchattacks

from benchmark.evaluation import eval_batch


class WarmStartPGD(torchattacks.PGD):
    """torchattacks' L∞ PGD started from a given perturbation `start` (set before each call) instead
    of zero or uniform noise, so min-min optimisation can carry its noise from one round to the next."""

    def __init__(self, model: torch.nn.Module, eps: float, alpha: float, steps: int) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        self.start: torch.Tensor | None = None

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        target = self.get_target_label(images, labels) if self.targeted else labels
        sign = -1.0 if self.targeted else 1.0  # targeted: descend the loss of the target label
        adv = images if self.start is None else (images + self.start.to(self.device).clamp(-self.eps, self.eps))
        adv = adv.clamp(0, 1).detach()
        for _ in range(self.steps):
            adv.requires_grad_(True)
            loss = sign * F.cross_entropy(self.get_logits(adv), target)
            grad = torch.autograd.grad(loss, adv)[0]
            delta = (adv.detach() + self.alpha * grad.sign() - images).clamp(-self.eps, self.eps)
            adv = (images + delta).clamp(0, 1).detach()
        return adv


def toward(label_fn: Callable[[torch.Tensor], torch.Tensor], attack: torchattacks.Attack) -> torchattacks.Attack:
    """Put `attack` in targeted mode with target labels `label_fn(labels)`."""
    attack.set_mode_targeted_by_function(lambda images, labels: label_fn(labels), quiet=True)
    return attack


def quantize(images: torch.Tensor, delta: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """uint8 images + float perturbation (in [0,1] units) → uint8, rounded and clipped to [0, 255]; with an L∞
    radius `eps` (in [0,1] units), each value's change is also kept within the whole 1/255 steps of that radius
    (rounding a change of 4.64/255 would give 5/255; at a whole radius such as 8/255 this changes nothing)."""
    out = (images.float() + delta * 255).round_()
    if eps is not None:
        steps = math.floor(eps * 255 + 1e-6)
        base = images.float()
        out = torch.minimum(torch.maximum(out, base - steps), base + steps)
    return out.clamp_(0, 255).to(torch.uint8)


def fast_layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model in channels_last, the layout the victim trainer uses: on a CPU its convolutions run
    1.7-2.7× faster than in NCHW (a PGD step of `fastcnn`, docs/performance.md); only the rounding differs."""
    return model.to(memory_format=torch.channels_last)


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of `model` (eval mode) on float images in [0,1]."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, batch = 0, eval_batch(device)
    for i in range(0, len(images), batch):
        logits = model(images[i : i + batch].to(device))
        correct += int((logits.argmax(1).cpu() == labels[i : i + batch]).sum())
    model.train(was_training)
    return correct / len(images)


def batches(n: int, size: int, progress: Callable[..., Any], desc: str) -> Any:
    """Consecutive index ranges covering 0..n in steps of `size`, with a progress bar."""
    return progress([slice(i, min(i + size, n)) for i in range(0, n, size)], desc=desc, leave=False)
