"""ResNets with the CIFAR stem (3×3 conv, stride 1, no max-pool): ResNet-18 (`paper`'s victim) and ResNet-50."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .cnn import Classifier


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and a shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand by 4, and a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _resnet(block: type[BasicBlock] | type[Bottleneck], depths: tuple[int, ...], num_classes: int,
            base: int = 64) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True)]
    cin = base
    for i, (width, depth) in enumerate(zip((base, 2 * base, 4 * base, 8 * base), depths)):
        for j in range(depth):
            layers.append(block(cin, width, 2 if i > 0 and j == 0 else 1))
            cin = width * block.expansion
    return Classifier(nn.Sequential(*layers), cin, num_classes)


@register_model("resnet18")
def resnet18(num_classes: int = 10) -> nn.Module:
    """ResNet-18 with the CIFAR stem, ~11.2M parameters: the `paper` victim."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes)


@register_model("resnet18-narrow")
def resnet18_narrow(num_classes: int = 10) -> nn.Module:
    """ResNet-18 at a quarter of the width (16-32-64-128 channels), ~0.7M parameters: ResNet-18's depth and
    shortcuts at about 3× a `fastcnn` step on a CPU."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes, base=16)


@register_model("resnet50")
def resnet50(num_classes: int = 10) -> nn.Module:
    """ResNet-50 (bottleneck blocks 3-4-6-3) with the CIFAR stem, ~23.5M parameters."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes)
