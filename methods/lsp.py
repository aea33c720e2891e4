"""Linear-separable synthetic perturbations (Yu et al., KDD 2022)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from benchmark.identity import ADDED
from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.registry import register_method

PER_PIXEL = 6.0  # /255: the paper's L2 budget is that of a uniform 6/255 change of every value


def l2_budget(image_shape: tuple[int, ...], per_pixel: float = PER_PIXEL) -> float:
    """√((per_pixel/255)²·C·H·W): 1.30 for 3×32×32 at the paper's 6/255."""
    return per_pixel / 255 * math.sqrt(math.prod(image_shape))


def gaussian_clusters(counts: list[int], dim: int, class_sep: float, gen: torch.Generator) -> list[torch.Tensor]:
    """One Gaussian cluster per class in the style of sklearn's make_classification (all features
    informative, one cluster per class): centroids on distinct vertices of a hypercube of side
    2·class_sep, each cluster a standard normal draw through its own random linear map."""
    vertices: set[tuple[int, ...]] = set()
    while len(vertices) < len(counts):
        vertices.add(tuple(torch.randint(0, 2, (dim,), generator=gen).tolist()))
    centroids = (torch.tensor(sorted(vertices), dtype=torch.float64) * 2 - 1) * class_sep
    centroids = centroids[torch.randperm(len(counts), generator=gen)]
    clusters = []
    for count, centroid in zip(counts, centroids):
        z = torch.randn(count, dim, generator=gen, dtype=torch.float64)
        a = 2 * torch.rand(dim, dim, generator=gen, dtype=torch.float64) - 1
        clusters.append(z @ a + centroid)
    return clusters


@register_method("lsp")
@dataclass
class LinearSeparablePerturbation(Method):
    """Linear-separable synthetic perturbations: class-wise Gaussian clusters as patch noise, L2 1.30."""

    limits = {"class_sep": (0, None), "patch_size": (0, None)}  # patch 0: the preset's

    cost = 0.1
    strength = Strength("eps", "amplitude", 0.5, 64.0)

    class_sep: float = 10.0
    patch_size: int = 0  # 0: 8 for images up to 64 px, 32 above (the paper's ImageNet setting)
    eps: float = field(default=PER_PIXEL, metadata=ADDED)  # the L2 budget as a uniform change of every value, in /255

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 255:
            raise ValueError(f"eps must be in (0, 255] (units of 1/255 per value), got {self.eps}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("l2", l2_budget(image_shape, self.eps))

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        n, ch, h, w = images.shape
        patch = self.patch_size or (8 if max(h, w) <= 64 else 32)
        gh, gw = math.ceil(h / patch), math.ceil(w / patch)
        counts = [int((labels == c).sum()) for c in range(ctx.num_classes)]
        clusters = gaussian_clusters(counts, ch * gh * gw, self.class_sep, ctx.generator("lsp/clusters"))
        noise = torch.empty(n, ch, gh, gw, dtype=torch.float64)
        for c, feats in enumerate(clusters):
            noise[labels == c] = feats.view(-1, ch, gh, gw)
        noise = noise.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :h, :w]
        eps = l2_budget((ch, h, w), self.eps)
        noise = noise * (eps / noise.flatten(1).norm(dim=1).clamp_min(1e-12))[:, None, None, None]
        return quantize_within_l2(images, noise * 255, eps * 255)


def quantize_within_l2(images: torch.Tensor, delta: torch.Tensor, radius: float) -> torch.Tensor:
    """images + delta (both on the 0-255 scale) as uint8: rounded to nearest, except for images
    whose rounding would leave the L2 ball, which are rounded towards zero instead."""
    base = images.double()
    nearest = (base + delta.round()).clamp(0, 255)
    over = (nearest - base).flatten(1).norm(dim=1) > radius
    toward_zero = (base + delta.trunc()).clamp(0, 255)
    return torch.where(over[:, None, None, None], toward_zero, nearest).to(torch.uint8)
