"""`semantic-add`: the control of DH's fidelity study (issue 15): the class's semantic image added to each image
directly, with no hiding network, at a chosen PSNR and frequency band."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.registry import register_method

from .attacks import quantize
from .dh.distortions import low_pass
from .dh.method import STREAM_ASSIGN, assign_secrets
from .dh.semantic import procedural_images

BANDS = ("full", "low", "high")


def finest_octave(x: torch.Tensor) -> torch.Tensor:
    """`x` without its 2×2 block means: only the detail bands of a one-level Haar transform, where `dh` hides."""
    means = torch.nn.functional.avg_pool2d(x, 2)
    return x - means.repeat_interleave(2, -2).repeat_interleave(2, -1)


def scaled_to_psnr(delta: torch.Tensor, psnr: float) -> torch.Tensor:
    """Each image's perturbation (in [0,1] units) scaled so that its MSE is that of `psnr` dB."""
    mse = delta.pow(2).flatten(1).mean(1).clamp_min(1e-12)
    target = 10 ** (-psnr / 10)
    return delta * (target / mse).sqrt().view(-1, 1, 1, 1)


@register_method("semantic-add")
@dataclass
class SemanticAdd(Method):
    """Control for DH: the class's procedural semantic image added directly at a set PSNR, full, low or finest band."""

    cost = 0.1
    in_all = False  # a control for docs/dh-fidelity.md, not a protection: `--methods all` leaves it out
    strength = Strength("psnr", "psnr", 5.0, 80.0)

    psnr: float = 28.0  # dB of each protected image against its clean one (before rounding to uint8)
    band: str = "full"  # full: the semantic image; low: its Gaussian blur; high: its Haar detail bands only
    sigma: float = 2.0  # std in pixels of the `low` band's blur
    semantic_per_class: int = 10  # procedural semantic images per class, as dh's

    def __post_init__(self) -> None:
        if self.band not in BANDS:
            raise ValueError(f"unknown band {self.band!r}; valid bands: {', '.join(BANDS)}")
        if not 5 <= self.psnr <= 80:
            raise ValueError(f"psnr must be in [5, 80] dB, got {self.psnr}")
        if self.sigma <= 0 or self.semantic_per_class < 1:
            raise ValueError(f"sigma must be > 0 and semantic_per_class ≥ 1, got {self.sigma}, {self.semantic_per_class}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("none")

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        secrets, secret_labels = procedural_images(ctx.num_classes, self.semantic_per_class, images.shape[-1], ctx.seed)
        s = secrets.float() / 255
        s = s - s.mean((2, 3), keepdim=True)  # no colour shift: only the pattern is added
        if self.band == "low":
            s = low_pass(s, self.sigma)
        elif self.band == "high":
            s = finest_octave(s)
        assignment = assign_secrets(labels, secret_labels, "class", ctx.generator(STREAM_ASSIGN))
        delta = scaled_to_psnr(s, self.psnr)[assignment]
        return quantize(images, delta)
