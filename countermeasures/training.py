"""Countermeasures that change how the victim learns: adversarial training, orthogonal projection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torchattacks

from benchmark.folding import folded
from benchmark.plugins import Context, Countermeasure
from benchmark.presets import Preset
from benchmark.registry import register_countermeasure
from benchmark.seeding import global_rng_from
from benchmark.training import InputGradient


@register_countermeasure("adv_train")
@dataclass
class AdversarialTraining(Countermeasure):
    """Madry adversarial training: each batch replaced by PGD (L∞ 8/255, step 2/255, 10 steps, random start)."""

    cost = 7.7
    version = "2"  # 2: on a CPU, PGD against the model with its batch norms folded (benchmark/folding.py)
    graph_step = True  # training_step trains on the batch once, in train mode; the attack runs in eval mode

    eps: float = 8.0  # in 1/255 units
    alpha: float = 2.0  # step size, in 1/255 units
    steps: int = 10
    # PGD-10 makes an epoch ~11× a standard one (10 attack forward/backward passes + the update), yet every
    # preset trains adversarially throughout: fewer adversarial epochs after standard ones is not a cheaper
    # version of the same countermeasure (at the quick preset, OPS: 47% with 10 of 10, 24-26% with the last 3 or 5).
    adv_epochs: int = 0  # adversarial epochs, the last ones of the schedule; 0: all
    family = "training"

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 255:
            raise ValueError(f"adv_train eps must be in (0, 255] (units of 1/255), got {self.eps}")
        if not 0 < self.alpha <= 255:
            raise ValueError(f"adv_train alpha must be in (0, 255] (units of 1/255), got {self.alpha}")
        if self.steps < 1:
            raise ValueError(f"adv_train steps must be >= 1, got {self.steps}")
        if self.adv_epochs < 0:
            raise ValueError(f"adv_train adv_epochs must be >= 0 (0: all epochs), got {self.adv_epochs}")
        self._gen: torch.Generator | None = None
        self._epochs = 0
        self._first_adv_epoch = 0
        self._gradient: InputGradient | None = None

    def setup(self, ctx: Context) -> None:
        self._gen = ctx.generator("adv_train/pgd-start", device=ctx.device)
        self._epochs = ctx.preset.epochs
        self._first_adv_epoch = self._epochs - self.settings(ctx.preset)["adv_epochs"]

    def settings(self, preset: Preset) -> dict[str, Any]:
        return {"adv_epochs": min(self.adv_epochs or preset.epochs, preset.epochs), "epochs": preset.epochs}

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """PGD adversarial examples of a float batch in [0, 1] against `model` (left in its train/eval mode)."""
        if self.cuda_graphs and x.is_cuda:
            return self._graphed_pgd(model, x, y, gen)
        # The attack runs in eval mode, as torchattacks runs it: batch norm uses its running statistics, folded
        # into the convolutions, and the ten attack forwards do not update them.
        attack = torchattacks.PGD(folded(model), eps=self.eps / 255, alpha=self.alpha / 255, steps=self.steps,
                                  random_start=True)
        with global_rng_from(gen):  # torchattacks draws the random start from the global RNG
            return attack(x, y)

    def _graphed_pgd(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     gen: torch.Generator) -> torch.Tensor:
        """torchattacks' PGD step for step (the same random start from the same draw, eval mode, sign steps,
        projection), its forward and backward passes replayed as one CUDA graph: on a GPU a PGD-10 batch is
        ten small passes bound by their kernel launches."""
        eps, alpha = self.eps / 255, self.alpha / 255
        training = model.training
        model.eval()
        with global_rng_from(gen):
            adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        if self._gradient is None or not self._gradient.matches(model, x, y):
            self._gradient = InputGradient(model, adv, y)
        for _ in range(self.steps):
            adv = adv + alpha * self._gradient(adv, y).sign()
            adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
        model.train(training)
        return adv

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        if self._gen is None:
            raise RuntimeError("adv_train: call setup(ctx) before training (it needs the preset and a generator)")
        if epoch >= self._first_adv_epoch:
            x = self.perturb(model, x, y, self._gen)
        return F.cross_entropy(model(x), y)


@register_countermeasure("ortho_projection")
@dataclass
class OrthogonalProjection(Countermeasure):
    """Orthogonal projection (Sandoval-Segura et al. 2023): remove the directions of a fitted linear classifier.

    A bias-free linear classifier is fitted to the flattened protected set; every image loses its component
    along the span of the class weight vectors."""

    epochs: int = 20  # the linear model's recipe in the paper's code: SGD lr 0.1, batch 1024, ×0.1 at 50% and 75%
    lr: float = 0.1
    family = "training"
    cache_preprocess = True

    BATCH: ClassVar[int] = 1024

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"ortho_projection epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"ortho_projection lr must be > 0, got {self.lr}")

    def directions(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        """Orthonormal basis (D×C) of the span of the class weights of a bias-free linear classifier fitted to
        the flattened images in [0, 1]."""
        # One seeded shuffle, then the same contiguous batches every epoch, as the paper's code (a DataLoader
        # without shuffling); contiguous slices also spare a gather of every batch.
        order = torch.randperm(len(images), generator=ctx.generator("ortho_projection/order"))
        x = images[order].to(ctx.device).flatten(1).float().div_(255)
        y = labels[order].to(ctx.device)
        weight = torch.zeros(ctx.num_classes, x.shape[1], device=ctx.device, requires_grad=True)
        opt = torch.optim.SGD([weight], lr=self.lr)
        milestones = [self.epochs // 2, (3 * self.epochs) // 4]
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
        for _ in range(self.epochs):
            for xb, yb in zip(x.split(self.BATCH), y.split(self.BATCH)):
                loss = F.cross_entropy(xb @ weight.T, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
        basis, _ = torch.linalg.qr(weight.detach().T)
        return basis

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        basis = self.directions(images, labels, ctx)
        x = images.to(ctx.device).flatten(1).float().div_(255)
        mean = x.mean(0, keepdim=True)
        # Projecting x − mean rather than x adds back one constant image (the mean's component along the
        # directions), the same for every sample, so no class information returns, and pixels stay near [0, 1].
        centred = x - mean
        projected = x - (centred @ basis) @ basis.T
        out = projected.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
        return out.view_as(images).cpu()
