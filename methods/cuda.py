"""Convolution-based Unlearnable DAtaset, CUDA (Sadasivan et al., CVPR 2023)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmark.identity import ADDED
from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.registry import register_method

KERNEL = 3
PEAK = 1.0  # the weight set at one random position of every kernel (the official `center_parameter`)


def class_kernels(num_classes: int, blur: float, gen: torch.Generator) -> torch.Tensor:
    """num_classes×3×3 kernels: weights uniform in [0, blur), then one random position of each set to PEAK."""
    kernels = torch.rand(num_classes, KERNEL * KERNEL, generator=gen, dtype=torch.float64) * blur
    kernels[torch.arange(num_classes), torch.randint(0, KERNEL * KERNEL, (num_classes,), generator=gen)] = PEAK
    return kernels.view(num_classes, KERNEL, KERNEL)


def convolve(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Images in [0,1] (n×C×H×W) filtered by one kernel in every channel (zero padding, same size), each
    divided by its largest value (an all-black image stays black)."""
    ch = x.shape[1]
    y = F.conv2d(x, kernel.expand(ch, 1, KERNEL, KERNEL), padding=KERNEL // 2, groups=ch)
    return y / y.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


@register_method("cuda")
@dataclass
class ConvolutionUnlearnable(Method):
    """CUDA: each image filtered by its class's random 3×3 blur kernel and rescaled to a peak of 255 (unbounded)."""

    cost = 0.01
    strength = Strength("mix", "amplitude", 0.01, 1.0)

    budget = Budget("none")

    blur: float = 0.3  # kernel weights are drawn uniform in [0, blur)
    mix: float = field(default=1.0, metadata=ADDED)  # share of the filtered image: image + mix·(filtered − image)

    def __post_init__(self) -> None:
        if not self.blur > 0:
            raise ValueError(f"blur must be > 0 (kernel weights are drawn from [0, blur)), got {self.blur}")
        if not 0 < self.mix <= 1:
            raise ValueError(f"mix must be in (0, 1] (1: the filtered image), got {self.mix}")

    def kernels(self, num_classes: int, ctx: Context) -> torch.Tensor:
        """The classes' kernels (num_classes×3×3)."""
        return class_kernels(num_classes, self.blur, ctx.generator("cuda/kernels"))

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        kernels = self.kernels(ctx.num_classes, ctx)
        out = torch.empty_like(images)
        for c in range(ctx.num_classes):
            idx = (labels == c).nonzero().flatten()
            if len(idx) == 0:
                continue
            # truncated to uint8, as the official script stores the filtered images
            filtered = convolve(images[idx].double() / 255, kernels[c]) * 255
            if self.mix != 1:
                filtered = images[idx].double() + self.mix * (filtered - images[idx].double())
            out[idx] = filtered.to(torch.uint8)
        return out
