"""Clean-accuracy evaluation of a victim on uint8 images."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from .folding import folded


def eval_batch(device: torch.device) -> int:
    """Images per forward pass where only speed depends on it (eval mode: each image's output is its own)."""
    # On a CPU the activations of a 1000-image batch fall out of cache: fastcnn evaluates 10,000 images 2.5×
    # slower at 1000 than at 128 (docs/performance.md); a GPU wants the large batch.
    return 128 if device.type == "cpu" else 1000


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy in [0,1] of `model` (in eval mode, its batch norms folded) on uint8 images (no augmentation)."""
    model = folded(model)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    correct, batch = 0, eval_batch(device)
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device).float().div_(255).contiguous(memory_format=torch.channels_last)
        with autocast:
            pred = model(x).argmax(1)
        correct += (pred == labels[i : i + batch].to(device)).sum().item()
    return correct / len(images)
