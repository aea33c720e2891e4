"""Countermeasures that transform the whole training set once before training."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as TF

from benchmark.plugins import Context, Countermeasure
from benchmark.registry import register_countermeasure

CHUNK = 4096


@register_countermeasure("grayscale")
@dataclass
class Grayscale(Countermeasure):
    """ISS-G: ITU-R 601-2 luma, replicated to three identical channels."""

    family = "pre-processing"

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        return TF.rgb_to_grayscale(images, num_output_channels=3)


@register_countermeasure("jpeg10")
@dataclass
class Jpeg(Countermeasure):
    """ISS-J: JPEG compression at quality 10 and back."""

    quality: int = 10
    family = "pre-processing"

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.quality}")

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        out = torch.empty_like(images)
        for i in ctx.progress(range(0, len(images), CHUNK), desc=f"jpeg q{self.quality}", leave=False):
            chunk = list(images[i : i + CHUNK])
            out[i : i + CHUNK] = torch.stack(decode_jpeg(encode_jpeg(chunk, quality=self.quality)))
        return out
