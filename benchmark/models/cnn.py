"""Plain convolutional victims: the `smoke` and `quick` CNNs and VGG-16 with batch norm."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Classifier(nn.Module):
    """Feature extractor, global average pooling and a linear head."""

    def __init__(self, features: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


@register_model("tinycnn")
def tinycnn(num_classes: int = 10) -> nn.Module:
    """Three conv layers (16-32-64 channels), ~25k parameters: the smoke-test victim."""
    features = nn.Sequential(conv_bn(3, 16), nn.MaxPool2d(2), conv_bn(16, 32), nn.MaxPool2d(2), conv_bn(32, 64))
    return Classifier(features, 64, num_classes)


@register_model("fastcnn")
def fastcnn(num_classes: int = 10) -> nn.Module:
    """Three conv-BN-ReLU-max-pool stages (32-64-128), a 3×3 conv on the 4×4 map, ~243k parameters: the CPU `quick` victim."""
    features = nn.Sequential(
        conv_bn(3, 32), nn.MaxPool2d(2),
        conv_bn(32, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2),
        conv_bn(128, 128),  # sees the whole image, so class patterns spread over it are learnable
    )
    return Classifier(features, 128, num_classes)


VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@register_model("vgg16bn")
def vgg16bn(num_classes: int = 10) -> nn.Module:
    """VGG-16 with batch norm for 32×32 inputs (13 conv layers, one linear layer on the 1×1×512 map), ~14.7M parameters."""
    layers: list[nn.Module] = []
    cin = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(conv_bn(cin, int(item)))
            cin = int(item)
    return Classifier(nn.Sequential(*layers), 512, num_classes)
