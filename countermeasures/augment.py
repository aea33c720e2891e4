"""Countermeasures that act per batch on the training device (float images in [0, 1])."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T

from benchmark.plugins import Context, Countermeasure, global_rng_from
from benchmark.registry import register_countermeasure


def _check_range(name: str, value: float, low: float, high: float, what: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] ({what}), got {value}")


@register_countermeasure("none")
@dataclass
class NoDefense(Countermeasure):
    """Standard training: RandomCrop(32, pad 4) + horizontal flip, which every countermeasure keeps."""


@register_countermeasure("cutout")
@dataclass
class Cutout(Countermeasure):
    """Cutout (DeVries & Taylor 2017): one square hole per image set to 0, centred anywhere, clipped at the border."""

    size: int = 16
    family = "augmentation"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"cutout size must be a positive number of pixels, got {self.size}")

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        cy = torch.randint(0, h, (b, 1, 1), generator=gen, device=x.device)
        cx = torch.randint(0, w, (b, 1, 1), generator=gen, device=x.device)
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        half = self.size // 2
        hole = (rows >= cy - half) & (rows < cy - half + self.size) & (cols >= cx - half) & (cols < cx - half + self.size)
        return x.masked_fill(hole[:, None], 0.0), y


@dataclass
class _LabelMixing(Countermeasure):
    """Shared by MixUp and CutMix: with probability `prob` mix the batch (torchvision v2), labels always soft."""

    alpha: float = 1.0
    prob: float = 0.5
    family = "augmentation"

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"{self.name} alpha (the Beta distribution's parameter) must be > 0, got {self.alpha}")
        _check_range(f"{self.name} prob", self.prob, 0.0, 1.0, "a probability")
        self._mix: T.Transform | None = None

    def make_transform(self, num_classes: int) -> T.Transform:
        raise NotImplementedError

    def setup(self, ctx: Context) -> None:
        self._mix = self.make_transform(ctx.num_classes)

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self._mix is None:
            raise RuntimeError(f"{self.name}: call setup(ctx) before augment (it needs the number of classes)")
        if torch.rand((), generator=gen, device=gen.device) >= self.prob:
            return x, F.one_hot(y, self._mix.num_classes).to(x.dtype)
        with global_rng_from(gen):  # torchvision draws the mixing weight and box from the global RNG
            return self._mix(x, y)


@register_countermeasure("cutmix")
@dataclass
class CutMix(_LabelMixing):
    """CutMix (Yun et al. 2019): with prob 0.5 paste a box of a partner image, λ ~ Beta(1, 1), area-weighted labels."""

    def make_transform(self, num_classes: int) -> T.Transform:
        return T.CutMix(alpha=self.alpha, num_classes=num_classes)


@register_countermeasure("mixup")
@dataclass
class MixUp(_LabelMixing):
    """MixUp (Zhang et al. 2018): with prob 0.5 blend each image with a partner, λ ~ Beta(1, 1), labels alike."""

    def make_transform(self, num_classes: int) -> T.Transform:
        return T.MixUp(alpha=self.alpha, num_classes=num_classes)


@register_countermeasure("autoaugment")
@dataclass
class AutoAugment(Countermeasure):
    """AutoAugment's CIFAR-10 policy (torchvision v2 on uint8), one sub-policy draw per group of `group` images."""

    # torchvision applies one sub-policy draw to a whole batch tensor; per image it costs 128 calls a
    # batch. Groups of 8 keep each image's marginal distribution exactly AutoAugment's (the draw is
    # independent of the images) and only correlate the augmentation within a group.
    group: int = 8
    family = "augmentation"

    def __post_init__(self) -> None:
        if self.group < 1:
            raise ValueError(f"autoaugment group must be a positive number of images, got {self.group}")
        self._policy = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = x.mul(255).round_().to(torch.uint8)  # exact: crop+flip of uint8 images stays on the 1/255 grid
        with global_rng_from(gen):  # torchvision draws the sub-policy and magnitudes from the global RNG
            out = torch.cat([self._policy(chunk) for chunk in images.split(self.group)])
        return out.to(x.dtype).div_(255), y


@register_countermeasure("ueraser")
@dataclass
class UEraser(Countermeasure):
    """UEraser (Qin et al. 2023): plasma, channel shuffle, TrivialAugment, JPEG; max loss of 5 copies early on.

    Plasma brightness and contrast, channel shuffle, TrivialAugment and JPEG of random quality in [10, 100)
    on every batch; in the first 30% of the epochs each image gets `repeats` augmented copies and its loss is
    the largest of theirs (UEraser's adversarial augmentation). It is a loss, so it overrides training_step."""

    repeats: int = 5
    repeat_fraction: float = 0.3  # UEraser trains 200 epochs and repeats in the first 60
    family = "augmentation"

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"ueraser repeats must be >= 1 (1: no adversarial repeat), got {self.repeats}")
        _check_range("ueraser repeat_fraction", self.repeat_fraction, 0.0, 1.0, "a fraction of the epochs")
        # The hyper-parameters of UEraser's public code; JPEG per the benchmark's protocol.
        self._augmentations = K.AugmentationSequential(
            K.RandomPlasmaBrightness(roughness=(0.3, 0.7), intensity=(0.5, 1.0), p=0.5),
            K.RandomPlasmaContrast(roughness=(0.3, 0.7), p=0.5),
            K.RandomChannelShuffle(p=0.5),
            K.auto.TrivialAugment(),
            K.RandomJPEG(jpeg_quality=(10.0, 100.0), p=1.0),
        )
        self._gen: torch.Generator | None = None
        self._repeat_epochs = 0

    def setup(self, ctx: Context) -> None:
        self._gen = ctx.generator(stream=5, device=ctx.device)
        self._repeat_epochs = round(self.repeat_fraction * ctx.preset.epochs)

    def effective_params(self) -> dict[str, Any]:
        return {**self.params(), "repeat_epochs": self._repeat_epochs}

    def transform(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One independent UEraser augmentation of every image of a float batch in [0, 1]."""
        with global_rng_from(gen), torch.no_grad():  # kornia draws every parameter from the global RNG
            return self._augmentations(x)

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        if self._gen is None:
            raise RuntimeError("ueraser: call setup(ctx) before training (it needs the preset and a generator)")
        k = self.repeats if epoch < self._repeat_epochs else 1
        copies = self.transform(x.repeat(k, 1, 1, 1), self._gen).contiguous(memory_format=torch.channels_last)
        losses = F.cross_entropy(model(copies), y.repeat(k), reduction="none")
        return losses.view(k, -1).max(dim=0).values.mean()
