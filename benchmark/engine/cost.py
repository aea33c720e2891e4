"""A victim's measured training cost, extrapolated to one cell of a preset (what `list models` prints)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..evaluation import eval_batch
from ..models import create_model
from ..presets import Preset

CIFAR10_SIZES = (5000, 1000, 10)  # training and test images per class, classes


@dataclass(frozen=True)
class ModelCost:
    """Seconds per training step and per evaluated image, and the cell time they add up to."""

    name: str
    parameters: int
    step_s: float  # one SGD step at the preset's batch size
    eval_image_s: float
    cell_s: float  # the preset's epochs of steps plus its evaluations of the test (and training) set


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that a clock reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_model(
    name: str, preset: Preset, device: torch.device, steps: int = 2, sizes: tuple[int, int, int] = CIFAR10_SIZES
) -> ModelCost:
    """Time `steps` SGD steps (after one warm-up) and one evaluation batch of `name` on `device`, and
    extrapolate to a cell of `preset` on a dataset of `sizes` (train per class, test per class, classes)."""
    train_per_class, test_per_class, classes = sizes
    n_train = (preset.train_per_class or train_per_class) * classes
    n_test = (preset.test_per_class or test_per_class) * classes
    bs = min(preset.batch_size, n_train)
    model = create_model(name, classes).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=preset.lr, momentum=preset.momentum)
    x = torch.rand(bs, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (bs,), device=device)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    step_s = (time.perf_counter() - start) / steps
    model.eval()
    batch = torch.rand(min(eval_batch(device), n_test), 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        model(batch)
        synchronize(device)
        start = time.perf_counter()
        model(batch)
        synchronize(device)
    eval_image_s = (time.perf_counter() - start) / len(batch)
    evaluations = math.ceil(preset.epochs / preset.eval_every)  # every eval_every epochs, and after the last
    cell_s = preset.epochs * (n_train // bs) * step_s + (evaluations * n_test + n_train) * eval_image_s
    return ModelCost(name, sum(p.numel() for p in model.parameters()), step_s, eval_image_s, cell_s)
