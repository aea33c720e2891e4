"""Clean-accuracy evaluation of a victim on uint8 images."""
from __future__ import annotations

from contextlib import nullcontext

import torch

EVAL_BATCH = 1000


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy in [0,1] of `model` on uint8 images (no augmentation)."""
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    correct = 0
    for i in range(0, len(images), EVAL_BATCH):
        x = images[i : i + EVAL_BATCH].to(device).float().div_(255).contiguous(memory_format=torch.channels_last)
        with autocast:
            pred = model(x).argmax(1)
        correct += (pred == labels[i : i + EVAL_BATCH].to(device)).sum().item()
    model.train(was_training)
    return correct / len(images)
