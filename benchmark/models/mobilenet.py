"""MobileNetV2 for 32×32 inputs: the ImageNet layout with the stem and the second stage at stride 1, so the
last feature map is 4×4 rather than 1×1."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .cnn import Classifier

# (expansion, output channels, blocks, first block's stride) per stage
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    """1×1 expand, 3×3 depthwise, 1×1 linear projection; a residual when shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        expand = _conv(cin, hidden, 1) if expansion != 1 else []
        self.body = nn.Sequential(*expand, *_conv(hidden, hidden, 3, stride, groups=hidden),
                                  *_conv(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 10) -> nn.Module:
    """MobileNetV2 (width 1.0, 1280-channel last layer) for 32×32 inputs, ~2.2M parameters."""
    layers: list[nn.Module] = _conv(3, 32, 3)
    cin = 32
    for expansion, cout, blocks, stride in STAGES:
        for i in range(blocks):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
            cin = cout
    layers += _conv(cin, 1280, 1)
    return Classifier(nn.Sequential(*layers), 1280, num_classes)
