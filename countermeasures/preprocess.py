"""Countermeasures that transform the whole training set once before training."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from benchmark.plugins import Context, Countermeasure
from benchmark.registry import register_countermeasure


@register_countermeasure("grayscale")
@dataclass
class Grayscale(Countermeasure):
    """ISS-G: ITU-R 601-2 luma exactly as PIL's convert('L'), replicated to three identical channels."""

    family = "pre-processing"

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        r, g, b = images.int().unbind(1)
        luma = ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).to(torch.uint8)  # PIL's fixed-point weights
        return luma[:, None].expand_as(images).contiguous()


@register_countermeasure("jpeg10")
@dataclass
class Jpeg(Countermeasure):
    """ISS-J: JPEG compression at quality 10 and back (PIL's encoder, as ISS)."""

    quality: int = 10
    family = "pre-processing"

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.quality}")

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        hwc = images.permute(0, 2, 3, 1).numpy()
        out = np.empty_like(hwc)
        for i in ctx.progress(range(len(hwc)), desc=f"jpeg q{self.quality}", leave=False, mininterval=1):
            buffer = io.BytesIO()
            Image.fromarray(hwc[i]).save(buffer, format="JPEG", quality=self.quality)
            out[i] = np.asarray(Image.open(buffer).convert("RGB"))
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
