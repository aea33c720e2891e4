"""DenseNet-121 for 32×32 inputs: a 3×3 stem without pooling, then the ImageNet model's dense blocks."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .cnn import Classifier


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)]


class DenseLayer(nn.Module):
    """Pre-activation 1×1 bottleneck (4·growth channels) and 3×3 conv; its `growth` new channels join the input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_bn_relu_conv(cin, 4 * growth, 1), *_bn_relu_conv(4 * growth, growth, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


@register_model("densenet121")
def densenet121(num_classes: int = 10, growth: int = 32, blocks: tuple[int, ...] = (6, 12, 24, 16)) -> nn.Module:
    """DenseNet-121 (growth 32, blocks 6-12-24-16, compression 0.5) with a CIFAR stem, ~7.0M parameters."""
    channels = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
    for i, depth in enumerate(blocks):
        for _ in range(depth):
            layers.append(DenseLayer(channels, growth))
            channels += growth
        if i < len(blocks) - 1:  # transition: halve channels and resolution
            layers += [*_bn_relu_conv(channels, channels // 2, 1), nn.AvgPool2d(2)]
            channels //= 2
    layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return Classifier(nn.Sequential(*layers), channels, num_classes)
