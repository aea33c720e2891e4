"""Victim networks: ResNet-18 (CIFAR stem) for `paper`, a fast CNN for `quick`, a tiny CNN for `smoke`."""
from __future__ import annotations

import torch
from torch import nn

from .registry import models, register_model


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
    """Three conv-BN-ReLU-max-pool stages (32-64-128) and a 4×4 conv, ~243k parameters: the CPU `quick` victim."""
    features = nn.Sequential(
        conv_bn(3, 32), nn.MaxPool2d(2),
        conv_bn(32, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2),
        conv_bn(128, 128),  # sees the whole image, so class patterns spread over it are learnable
    )
    return Classifier(features, 128, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_model("resnet18")
def resnet18(num_classes: int = 10) -> nn.Module:
    """ResNet-18 with the CIFAR stem (3×3 conv, no max-pool): the `paper` victim."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    return Classifier(nn.Sequential(*layers), 512, num_classes)


def create_model(name: str, num_classes: int) -> nn.Module:
    """Build the registered victim `name`."""
    return models.get(name)(num_classes=num_classes)
