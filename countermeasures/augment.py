"""Countermeasures that act per batch on the training device (float images in [0, 1])."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import kornia.augmentation as K
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

from benchmark.plugins import Context, Countermeasure
from benchmark.presets import Preset
from benchmark.registry import register_countermeasure
from benchmark.seeding import global_rng_from


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
    """Shared by MixUp and CutMix: with probability `prob` mix the batch (torchvision v2), labels always soft.

    `prob` 1 (version 2; version 1 mixed half the batches): the papers mix every batch, and so does APBench,
    whose reference column runs kornia's RandomMixUpV2 / RandomCutMixV2 at their default p = 1."""

    version = "2"

    alpha: float = 1.0
    prob: float = 1.0
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
    """CutMix (Yun et al. 2019): every batch, paste a box of a partner image, λ ~ Beta(1, 1), area-weighted labels."""

    def make_transform(self, num_classes: int) -> T.Transform:
        return T.CutMix(alpha=self.alpha, num_classes=num_classes)


@register_countermeasure("mixup")
@dataclass
class MixUp(_LabelMixing):
    """MixUp (Zhang et al. 2018): every batch, blend each image with a partner, λ ~ Beta(1, 1), labels alike."""

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


def _uniform(low_high: tuple[float, float], n: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """N draws from U(low, high) on `like`'s device and dtype."""
    low, high = low_high
    return low + (high - low) * torch.rand(n, generator=gen, device=like.device, dtype=like.dtype)


def _diamond_square_level(grid: torch.Tensor, weight: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One diamond-square refinement of N×n×n maps to N×(2n−1)×(2n−1): each new node is
    (1 − weight)·mean(neighbours) + weight·U(0, 1), with 3 neighbours on the border (as kornia's)."""
    n, size = grid.shape[0], 2 * grid.shape[1] - 1
    noise = torch.rand(n, size, size, generator=gen, device=grid.device, dtype=grid.dtype) * weight
    new = grid.new_zeros(n, size, size)
    new[:, ::2, ::2] = grid
    corners = grid[:, :-1, :-1] + grid[:, 1:, :-1] + grid[:, :-1, 1:] + grid[:, 1:, 1:]
    new[:, 1::2, 1::2] = (1 - weight) * corners / 4 + noise[:, 1::2, 1::2]
    padded = F.pad(new, (1, 1, 1, 1))
    sums = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    counts = 4.0 - F.pad(new.new_zeros(size - 2, size - 2), (1, 1, 1, 1), value=1.0)
    odd = torch.arange(size, device=grid.device) % 2
    edge_nodes = (odd[:, None] + odd[None, :]) == 1
    return torch.where(edge_nodes, (1 - weight) * sums / counts + noise, new)


def plasma(n: int, height: int, width: int, roughness: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """N plasma fractals in [0, 1] (N×H×W) by diamond-square, the recursion of kornia's `diamond_square`
    (random_scale 1: level k mixes in noise with weight roughness^k), vectorised with slicing."""
    levels = max(1, math.ceil(math.log2(max(height, width, 3) - 1)))
    weight = roughness.view(-1, 1, 1)
    grid = torch.rand(n, 2, 2, generator=gen, device=roughness.device, dtype=roughness.dtype)
    grid = _diamond_square_level(grid, torch.zeros_like(weight), gen)  # the 3×3 seed: means only
    for k in range(1, levels):
        grid = _diamond_square_level(grid, weight**k, gen)
    return grid[:, :height, :width]


# UEraser's variant per preset: (repeat_fraction, plasma_prob). At the CPU presets UEraser-max's five copies in
# every epoch cost 13× a standard cell and underfit the 10 epochs (quick, clean: 37.4 % against 45.4 %).
VARIANT: dict[str, tuple[float, float]] = {"smoke": (0.3, 0.5), "quick": (0.3, 0.5), "paper": (1.0, 1.0)}


@register_countermeasure("ueraser")
@dataclass
class UEraser(Countermeasure):
    """UEraser (Qin et al. 2023): plasma, channel shuffle, TrivialAugment; max loss of 5 augmented copies.

    Each image gets `repeats` augmented copies (plasma brightness and plasma contrast, each with probability
    `plasma_prob`, channel shuffle with probability 0.5, TrivialAugment) and its loss is the largest of theirs
    (UEraser's adversarial augmentation) in the first `repeat_fraction` of the epochs, one copy after. As in the
    UEraser and APBench training loops, each copy is its own augmentation call (TrivialAugment picks one
    operation a call) and its own forward pass (batch norm sees one copy of the batch). It is a loss, so it
    overrides training_step. Left at −1, the two take the preset's variant (VARIANT): at `paper`
    UEraser-max, APBench's reference column (repeats in every epoch, plasma always); at the CPU presets the
    UEraser repository's schedule (repeats in the first 30 %, plasma with p 0.5). `repeat_fraction=0` is
    UEraser-Lite; `jpeg=true` JPEG-compresses each copy at a random quality in [10, 100) first, as APBench
    does for TAP and AR only (with `plasma_prob=0.8`)."""

    # 3: one augmentation call and one forward pass per copy (2 augmented and trained the K copies as one batch:
    # one TrivialAugment operation for all of them, batch norm over all of them). 1: plasma p 0.5, JPEG of random
    # quality on every batch, repeats in the first 30 %.
    version = "3"
    cost = 3.3  # at quick, 30 % of the epochs repeat K = 5 (UEraser-max: 13)

    repeats: int = 5
    repeat_fraction: float = -1.0  # the first epochs that repeat (−1: the preset's); UEraser-max: all
    plasma_prob: float = -1.0  # −1: the preset's; APBench's UEraser-max 1.0, the UEraser repository's 0.5
    jpeg: bool = False
    family = "augmentation"

    # UEraser's public code: plasma roughness U(0.3, 0.7), brightness intensity U(0.5, 1).
    ROUGHNESS: ClassVar[tuple[float, float]] = (0.3, 0.7)
    INTENSITY: ClassVar[tuple[float, float]] = (0.5, 1.0)
    JPEG_QUALITY: ClassVar[tuple[int, int]] = (10, 99)  # inclusive: q ∈ [10, 100), as APBench's random JPEG

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"ueraser repeats must be >= 1 (1: no adversarial repeat), got {self.repeats}")
        if self.repeat_fraction != -1:
            _check_range("ueraser repeat_fraction", self.repeat_fraction, 0.0, 1.0, "a fraction of the epochs or -1")
        if self.plasma_prob != -1:
            _check_range("ueraser plasma_prob", self.plasma_prob, 0.0, 1.0, "a probability or -1")
        self._kornia = K.AugmentationSequential(K.RandomChannelShuffle(p=0.5), K.auto.TrivialAugment())
        self._gen: torch.Generator | None = None
        self._repeat_epochs = 0
        self._plasma_prob = self.plasma_prob

    def setup(self, ctx: Context) -> None:
        self._gen = ctx.generator("ueraser/augment", device=ctx.device)
        s = self.settings(ctx.preset)
        self._repeat_epochs, self._plasma_prob = s["repeat_epochs"], s["plasma_prob"]

    def settings(self, preset: Preset) -> dict[str, Any]:
        fraction, plasma = VARIANT.get(preset.name, VARIANT["paper"])
        fraction = fraction if self.repeat_fraction == -1 else self.repeat_fraction
        return {"repeat_fraction": fraction, "repeat_epochs": round(fraction * preset.epochs),
                "plasma_prob": plasma if self.plasma_prob == -1 else self.plasma_prob}

    def _plasma_maps(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, c, h, w = x.shape
        roughness = _uniform(self.ROUGHNESS, b, gen, x).repeat_interleave(c)
        return plasma(b * c, h, w, roughness, gen).view_as(x)

    def _brightness(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        intensity = _uniform(self.INTENSITY, len(x), gen, x).view(-1, 1, 1, 1)
        return (x + intensity * (2 * self._plasma_maps(x, gen) - 1)).clamp_(0, 1)

    def _contrast(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return ((x - 0.5) * 4 * self._plasma_maps(x, gen) + 0.5).clamp_(0, 1)

    def _jpeg(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The real JPEG codec at one random quality for the whole batch, as APBench's random JPEG."""
        # torchvision's codec on uint8: 2.4× faster here than kornia's differentiable approximation. torchvision
        # 0.29 deprecates it in favour of torchcodec (pyproject caps torchvision below 0.30); the warning would
        # fire every batch.
        low, high = self.JPEG_QUALITY
        quality = int(torch.randint(low, high + 1, (), generator=gen, device=gen.device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            coded = TF.jpeg(x.mul(255).round_().to(torch.uint8), quality)
        return coded.to(x.dtype).div_(255)

    def transform(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One UEraser augmentation of a float batch in [0, 1]: one call of the official `UEraser(images)`."""
        if self.jpeg:
            x = self._jpeg(x, gen)
        # Plasma brightness and contrast as kornia's RandomPlasmaBrightness/Contrast (per-channel maps, each
        # image with probability `plasma_prob`), with the maps from `plasma`: kornia's convolution-based
        # diamond_square alone took ~50% of a quick-preset training step on the CPU.
        for op in (self._brightness, self._contrast):
            chosen = (torch.rand(len(x), generator=gen, device=x.device) < self._plasma_prob).nonzero().flatten()
            if len(chosen) == len(x):
                x = op(x, gen)
            elif len(chosen):
                x = x.index_copy(0, chosen, op(x[chosen], gen))
        with global_rng_from(gen), torch.no_grad():  # kornia draws its parameters from the global RNG
            return self._kornia(x)

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        if self._gen is None:
            raise RuntimeError("ueraser: call setup(ctx) before training (it needs the preset and a generator)")
        k = self.repeats if epoch < self._repeat_epochs else 1
        losses = [F.cross_entropy(model(self.transform(x, self._gen).contiguous(memory_format=torch.channels_last)), y,
                                  reduction="none") for _ in range(k)]
        return torch.stack(losses).max(dim=0).values.mean()
