"""One-Pixel Shortcut (Wu et al., ICLR 2023), and its k-pixel extension as a strength knob."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from benchmark.identity import ADDED
from benchmark.plugins import Budget, Context, Method, Strength
from benchmark.registry import register_method

# The 8 corners of the RGB cube, index bits (r, g, b) most significant first.
CORNERS = torch.tensor([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=torch.float32)


def class_scores(images: torch.Tensor) -> torch.Tensor:
    """Score (8×H×W) of every (corner colour, position) for one class's uint8 images:
    mean over images and channels of |colour − pixel| divided by its (population) std."""
    x = images.float() / 255
    scores = []
    for colour in CORNERS:
        dev = (colour[None, :, None, None] - x).abs()
        scores.append(dev.mean(dim=(0, 1)) / dev.std(dim=(0, 1), correction=0).clamp_min(1e-12))
    return torch.stack(scores)


@register_method("ops")
@dataclass
class OnePixelShortcut(Method):
    """One-Pixel Shortcut: per class, one pixel set to the corner colour that stands out most (no model)."""

    cost = 0.1
    strength = Strength("pixels", "count", 1, 1024, integer=True)

    pixels: int = field(default=1, metadata=ADDED)  # positions set per class, the best-scoring ones (the paper: 1)

    def __post_init__(self) -> None:
        if self.pixels < 1:
            raise ValueError(f"pixels must be ≥ 1, got {self.pixels}")

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return Budget("l0", self.pixels)

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        out = images.clone()
        h, w = images.shape[2:]
        if self.pixels > h * w:
            raise ValueError(f"ops pixels={self.pixels} exceeds the {h}×{w} = {h * w} positions of an image")
        taken: set[tuple[int, int]] = set()  # (position, colour) pairs already used by another class
        for c in ctx.progress(range(ctx.num_classes), desc="ops classes", leave=False):
            idx = (labels == c).nonzero().flatten()
            if len(idx) == 0:
                continue
            scores = class_scores(images[idx]).flatten()
            chosen: dict[int, int] = {}  # position → colour, best-scoring first, one colour per position
            for flat in scores.argsort(descending=True, stable=True).tolist():
                colour, pos = divmod(flat, h * w)
                if (pos, colour) not in taken and pos not in chosen:
                    chosen[pos] = colour
                    if len(chosen) == self.pixels:
                        break
            for pos, colour in chosen.items():
                taken.add((pos, colour))
                row, col = divmod(pos, w)
                out[idx, :, row, col] = (CORNERS[colour] * 255).to(torch.uint8)
        return out
