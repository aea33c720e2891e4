"""Victim networks for 32×32 inputs, one registry (`python -m benchmark list models` prints it with each one's
measured cost). Every model maps float images in [0, 1], N×3×H×W, to logits and exposes `.features` (the last
feature map, N×C×h×w, before pooling) and `.head` (the linear classifier)."""
from __future__ import annotations

from torch import nn

from ..registry import models

# Imported in this order because registration order is `list`'s order.
from .cnn import Classifier, conv_bn, fastcnn, tinycnn, vgg16bn  # noqa: I001
from .resnet import resnet18, resnet50
from .mobilenet import mobilenetv2
from .densenet import densenet121
from .vit import vit_tiny_p4
from .airbench import airbench

__all__ = ["Classifier", "airbench", "conv_bn", "create_model", "densenet121", "fastcnn", "mobilenetv2", "resnet18",
           "resnet50",
           "tinycnn", "vgg16bn", "vit_tiny_p4"]


def create_model(name: str, num_classes: int) -> nn.Module:
    """Build the registered victim `name`."""
    return models.get(name)(num_classes=num_classes)
