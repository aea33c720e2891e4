"""A small Vision Transformer with 4×4 patches, built by timm (`pip install 'uebench[timm]'`)."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .cnn import Classifier


class TokenGrid(nn.Module):
    """A timm ViT's patch tokens after the final norm, laid out as an N×C×h×w map (the `.features` contract)."""

    def __init__(self, vit: nn.Module, grid: int) -> None:
        super().__init__()
        self.vit = vit
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features(x)  # N × (h·w) × C: no class token
        return tokens.transpose(1, 2).reshape(len(x), -1, self.grid, self.grid)


@register_model("vit-tiny-p4")
def vit_tiny_p4(num_classes: int = 10) -> nn.Module:
    """ViT with 4×4 patches on 32×32 inputs (64 tokens, width 192, depth 6, 3 heads, mean-pooled), ~2.7M parameters (timm)."""
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as exc:
        raise ImportError("model 'vit-tiny-p4' needs timm: pip install 'uebench[timm]'") from exc
    vit = VisionTransformer(
        img_size=32, patch_size=4, num_classes=0, global_pool="", class_token=False, fc_norm=False,
        embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0,
    )
    return Classifier(TokenGrid(vit, 32 // 4), 192, num_classes)
