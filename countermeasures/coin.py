"""COIN (Li et al., AAAI 2025): a pixel-based random resampling built against convolution-based unlearnable examples
such as CUDA, whose per-class blur it breaks up. Beyond the paper's protocol: in the `extra` suite."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.plugins import Countermeasure
from benchmark.registry import register_countermeasure

from .uint8_grid import to_uint8_grid


def displace(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image of `x` (B×C×H×W) sampled bilinearly at (row + dy, column + dx) (B×H×W each, shared by the channels),
    the coordinates taken modulo the image size (periodic wrap-around)."""
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + dy
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + dx
    r0, c0 = rows.floor(), cols.floor()
    fr, fc = (rows - r0)[:, None], (cols - c0)[:, None]
    r0, c0 = r0.long() % h, c0.long() % w
    r1, c1 = (r0 + 1) % h, (c0 + 1) % w
    flat = x.reshape(b, c, h * w)

    def at(r: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (r * w + col).view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)

    return (at(r0, c0) * (1 - fr) * (1 - fc) + at(r0, c1) * (1 - fr) * fc
            + at(r1, c0) * fr * (1 - fc) + at(r1, c1) * fr * fc)


@register_countermeasure("coin")
@dataclass
class Coin(Countermeasure):
    """COIN (Li et al. 2025): every pixel resampled bilinearly at a random offset uniform in [−α, α] px, α 2, per batch."""

    alpha: float = 2.0  # the official default (severity 4)
    family = "augmentation"
    suite = "extra"
    limits = {"alpha": (0.0, 16.0)}

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # one (dy, dx) per pixel and image, fresh every batch and shared by the channels, as the official
        # per-sample transform after crop and flip; its uint8 output (truncated) is kept on the 1/255 grid too
        b, _, h, w = x.shape
        offsets = (torch.rand((2, b, h, w), generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * self.alpha
        return to_uint8_grid(displace(x, offsets[0], offsets[1]), rounding=False), y
