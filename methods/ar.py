"""Autoregressive perturbations (Sandoval-Segura et al., NeurIPS 2022)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.registry import register_method

from .lsp import quantize_within_l2

WINDOW = 3  # each value is predicted from the other 8 values of the 3×3 window it closes
CROP = 4  # noise is generated on (H+4)×(W+4) and its first 4 rows and columns (the random start) dropped
SEARCH_SIZE = 32  # processes are screened on 32×32 patterns, as the official search does for every dataset
TRIALS = 3  # patterns generated per candidate process to test its stability
MAX_NORM = 50.0  # a candidate is stable when every trial pattern's L2 norm (before scaling) is at most this
SCREEN = 12  # first check a candidate on the 12×12 corner of its first trial (a lower bound of that norm)
BATCH = 4096  # candidate processes drawn at a time
MAX_DRAWS = 4_000_000
CHUNK = 2048  # images whose noise is generated together


def autoregress(coefficients: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Run one AR process per signal over `start` (n×C×H×W, float64) in raster order: from the third row and
    column on, every value becomes the sum of its 3×3 window weighted by `coefficients` (n×C×3×3, whose
    last entry, the value's own weight, is 0), the values above and to the left already replaced. Returns
    the signals without their first CROP rows and columns."""
    x = start.clone()
    h, w = x.shape[2:]
    for i in range(h - WINDOW + 1):
        for j in range(w - WINDOW + 1):
            x[:, :, i + WINDOW - 1, j + WINDOW - 1] = (x[:, :, i:i + WINDOW, j:j + WINDOW] * coefficients).sum((2, 3))
    return x[:, :, CROP:, CROP:]


def draw_coefficients(count: int, channels: int, gen: torch.Generator) -> torch.Tensor:
    """count×C×3×3 random processes: standard normal weights, the last one 0, each channel's divided by
    its sum (so that they sum to 1, which keeps most processes from blowing up)."""
    b = torch.randn(count, channels, WINDOW, WINDOW, generator=gen, dtype=torch.float64)
    b[:, :, -1, -1] = 0
    return b / b.sum((2, 3), keepdim=True)


def response(patterns: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """n×k: the summed positive part of each process's prediction error over each pattern (n×C×H×W), the
    process's filter being its weights with −1 for the predicted value. A process's own patterns give 0."""
    filters = coefficients.clone()
    filters[:, :, -1, -1] = -1
    return F.relu(F.conv2d(patterns, filters)).sum((2, 3))


def l2_norms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(x.dim() - 3).norm(dim=-1)


def stable(norms: torch.Tensor) -> torch.Tensor:
    return (norms.isfinite() & (norms <= MAX_NORM)).flatten(1).all(1)


def inner_radius(radius: float, values: int) -> float:
    """The L2 norm (0-255 scale) to give noise of `values` values so that rounding it to whole levels,
    which adds about values/12 to its squared norm, give or take radius/√3, leaves it within `radius`
    for nearly every image (three standard deviations inside; at least radius/2)."""
    return math.sqrt(max(radius ** 2 - values / 12 - math.sqrt(3) * radius, radius ** 2 / 4))


def find_processes(count: int, channels: int, min_response: float, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """`count` processes (count×C×3×3) found greedily, as the official search does: a random candidate is
    kept when it is stable and the filter of every process kept before responds at least `min_response`
    to a (unit-L2) pattern it generates. Also returns how many candidates were drawn."""
    found = torch.empty(0, channels, WINDOW, WINDOW, dtype=torch.float64)
    side = SEARCH_SIZE + CROP
    for drawn in range(BATCH, MAX_DRAWS + 1, BATCH):
        b = draw_coefficients(BATCH, channels, gen)
        corner = torch.randn(BATCH, channels, SCREEN, SCREEN, generator=gen, dtype=torch.float64)
        keep = stable(l2_norms(autoregress(b, corner))[:, None])
        b, corner = b[keep], corner[keep]
        starts = torch.randn(len(b), TRIALS, channels, side, side, generator=gen, dtype=torch.float64)
        starts[:, 0, :, :SCREEN, :SCREEN] = corner
        trials = autoregress(b.repeat_interleave(TRIALS, 0), starts.flatten(0, 1)).unflatten(0, (len(b), TRIALS))
        norms = l2_norms(trials)
        ok = stable(norms)
        for coefficients, pattern in zip(b[ok], trials[ok, 0] / norms[ok, 0, None, None, None]):
            if len(found) == 0 or response(pattern[None], found).min() >= min_response:
                found = torch.cat([found, coefficients[None]])
                if len(found) == count:
                    return found, drawn
    raise RuntimeError(
        f"found {len(found)} of {count} AR processes in {MAX_DRAWS} candidates (each pattern must draw a response "
        f"≥ {min_response} from every process kept before it); set a lower ar.min_response"
    )


@register_method("ar")
@dataclass
class AutoregressivePerturbation(Method):
    """Autoregressive perturbations: per class one random stable 3×3 AR process, fresh noise per image, L2 1.0."""

    cost = 0.5
    strength = Strength("eps", "amplitude", 0.05, 20.0)

    eps: float = 1.0  # L2 radius of each image's noise, in [0,1] pixel units
    min_response: float = 0.0  # 0: the official searches' 10 for up to 10 classes, 3 for more (CIFAR-100)

    def __post_init__(self) -> None:
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0 (an L2 radius in [0,1] pixel units), got {self.eps}")
        if not self.min_response >= 0:
            raise ValueError(f"min_response must be ≥ 0 (0: 10 up to 10 classes, else 3), got {self.min_response}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("l2", self.eps)

    def response_threshold(self, num_classes: int) -> float:
        return self.min_response or (10.0 if num_classes <= 10 else 3.0)

    def processes(self, num_classes: int, channels: int, ctx: Context) -> tuple[torch.Tensor, int]:
        """The classes' AR coefficients (num_classes×C×3×3) and the number of candidates drawn to find them."""
        return find_processes(num_classes, channels, self.response_threshold(num_classes), ctx.generator("ar/processes"))

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        n, ch, h, w = images.shape
        coefficients, drawn = self.processes(ctx.num_classes, ch, ctx)
        gen = ctx.generator("ar/starts")
        chunks = []
        for idx in torch.arange(n).split(CHUNK):
            start = torch.randn(len(idx), ch, h + CROP, w + CROP, generator=gen, dtype=torch.float64)
            chunks.append(autoregress(coefficients[labels[idx]], start))
        noise = torch.cat(chunks)
        radius = self.eps * 255
        noise = noise * (inner_radius(radius, ch * h * w) / l2_norms(noise))[:, None, None, None]
        ctx.notes.update(settings={"min_response": self.response_threshold(ctx.num_classes)}, candidates_drawn=drawn)
        return quantize_within_l2(images, noise, radius)
