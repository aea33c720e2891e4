"""Float images put back on the uint8 grid, as the official defences' uint8 casts leave them."""
from __future__ import annotations

import torch


def to_uint8_grid(x: torch.Tensor, rounding: bool = True) -> torch.Tensor:
    """`x` in [0, 1] put on the 1/255 grid, rounded (OpenCV's casts) or truncated (NumPy's `astype(uint8)`)."""
    scaled = x.clamp(0, 1) * 255
    return (scaled.round() if rounding else scaled.add(1e-4).floor()) / 255  # 1e-4: k/255 stays k, not k − 1
