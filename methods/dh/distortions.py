"""Differentiable stand-ins for the low-pass countermeasures, put between the stego image and the revealing pass
while the hiding network trains (`dh.distortion=filters`), so that the secret must survive them."""
from __future__ import annotations

import math
from typing import Callable

import kornia
import torch
import torch.nn.functional as F

DISTORTIONS = ("none", "filters")
NOISE_STD = 8 / 255


def low_pass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of std `sigma` pixels (reflected borders)."""
    k = 2 * math.ceil(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _blur(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    sigma = _uniform(gen, 0.5, 1.5)
    return kornia.filters.gaussian_blur2d(x, (5, 5), (sigma, sigma), border_type="reflect")


def _mean(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return kornia.filters.box_blur(x, (3, 3), border_type="reflect")


def _median(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return kornia.filters.median_blur(x, (3, 3))


def _resize(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    small = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _jpeg(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    quality = torch.tensor([_uniform(gen, 10, 50)], device=x.device)
    return kornia.enhance.jpeg_codec_differentiable(x.clamp(0, 1), quality)


def _noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x + NOISE_STD * torch.randn(x.shape, generator=gen).to(x.device)


def _identity(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x


FILTERS: tuple[Callable[[torch.Tensor, torch.Generator], torch.Tensor], ...] = (
    _identity, _blur, _mean, _median, _resize, _jpeg, _noise,
)


def random_distortion(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One of: nothing, Gaussian blur (σ 0.5–1.5), 3×3 mean, 3×3 median, resize ×0.5 and back, differentiable
    JPEG (quality 10–50), Gaussian noise (σ 8/255), drawn from `gen` (a CPU generator) for the whole batch."""
    return FILTERS[int(torch.randint(len(FILTERS), (1,), generator=gen))](x, gen)
