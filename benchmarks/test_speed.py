"""Speed targets, run with `python -m pytest benchmarks --benchmark-only`; ratios against a
reference measured in the same run, never absolute seconds alone."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms
from torchvision.datasets import CIFAR10

from benchmark.cli import main
from benchmark.data import ImageSet, balanced_indices, load_dataset
from benchmark.models import create_model
from benchmark.plugins import Countermeasure
from benchmark.presets import PRESETS
from benchmark.training import lr_lambda, train_victim

EPOCHS = 2
ROUNDS = 2


def reference_epochs(data_root: str, indices: torch.Tensor, model_name: str, epochs: int) -> float:
    """Images/s of the textbook pipeline: torchvision CIFAR10 + PIL transforms + DataLoader, same recipe."""
    preset = PRESETS["quick"]
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    loader = DataLoader(Subset(CIFAR10(data_root, train=True, transform=tf), indices.tolist()), batch_size=preset.batch_size,
                        shuffle=True, drop_last=True, num_workers=0)
    torch.manual_seed(0)
    model = create_model(model_name, 10)
    opt = torch.optim.SGD(model.parameters(), lr=preset.lr, momentum=preset.momentum,
                          weight_decay=preset.weight_decay, nesterov=preset.nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(dataclasses.replace(preset, epochs=epochs), len(loader)))
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(x)
    return seen / (time.perf_counter() - start)


@pytest.mark.parametrize("model_name", ["tinycnn", "fastcnn"])
def test_trainer_throughput_vs_dataloader_pil(benchmark, data_root, model_name):
    full = load_dataset("cifar10", True, data_root, download=False)
    picked = balanced_indices(full.labels, 10, 500, 0)  # the same 5,000 images for both pipelines
    subset = ImageSet(full.images[picked], full.labels[picked], full.classes)

    preset = dataclasses.replace(PRESETS["quick"], model=model_name, epochs=EPOCHS, eval_every=10**6)
    ours: list[float] = []

    def train() -> None:
        result = train_victim(subset.images, subset.labels, subset.images[:1000], subset.labels[:1000], 10, preset,
                              Countermeasure(), 0, torch.device("cpu"))
        ours.append(result.images_per_second)

    # Best of two rounds each, interleaved, so a noisy neighbour on the machine hurts neither side alone.
    benchmark.pedantic(train, rounds=ROUNDS, iterations=1)
    reference = max(reference_epochs(data_root, picked, model_name, EPOCHS) for _ in range(ROUNDS))
    ratio = max(ours) / reference
    benchmark.extra_info.update(ours_images_per_s=max(ours), reference_images_per_s=reference, ratio=ratio)
    print(f"\n{model_name}: ours {max(ours):.0f} img/s, DataLoader+PIL {reference:.0f} img/s, ratio {ratio:.2f}")
    assert ratio >= 1.5


def test_smoke_grid_wall_time(benchmark, data_root, tmp_path):
    """3 methods × 3 countermeasures at the smoke preset, generation included (target: < 120 s)."""
    def grid() -> int:
        return main(["run", "--methods", "ops,lsp", "--defenses", "none,grayscale,jpeg10", "--preset", "smoke",
                     "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                     "--data-root", data_root, "--device", "cpu", "--no-progress"])

    assert benchmark.pedantic(grid, rounds=1, iterations=1) == 0
    assert benchmark.stats.stats.max < 120


def _flops_per_image(model: torch.nn.Module, step: Callable[[], None], batch: int) -> float:
    """FLOPs of one call of `step` per image of its batch, as PyTorch's FLOP counter counts them."""
    with FlopCounterMode(model, display=False) as counter:
        step()
    return counter.get_total_flops() / batch


def test_quick_step_against_the_cores_matmul_rate(benchmark, one_thread):
    """The quick victim's training step in FLOP/s against a large fp32 matrix product on the same core, best of
    3 interleaved rounds: a step near the product's rate leaves a CPU grid nothing to gain in its standard cells
    (target: ≥ 0.8)."""
    preset = PRESETS["quick"]
    model = create_model(preset.model, 10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=preset.lr, momentum=preset.momentum,
                          weight_decay=preset.weight_decay, nesterov=preset.nesterov)
    x = torch.rand(preset.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (preset.batch_size,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    flops = _flops_per_image(model, step, preset.batch_size)
    a, b, n = torch.rand(2048, 2048), torch.rand(2048, 2048), 2048
    matmul, images = [], []

    def round_() -> None:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        matmul.append(5 * 2 * n**3 / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(20):
            step()
        images.append(20 * preset.batch_size / (time.perf_counter() - start))

    benchmark.pedantic(round_, rounds=3, iterations=1)
    ratio = max(images) * flops / max(matmul)
    benchmark.extra_info.update(gflop_per_image=flops / 1e9, images_per_s=max(images),
                                matmul_gflop_per_s=max(matmul) / 1e9, ratio=ratio)
    print(f"\n{preset.model}: {flops / 1e9:.4f} GFLOP/image, {max(images):.0f} img/s = {max(images) * flops / 1e9:.1f} "
          f"GFLOP/s; fp32 {n}² matmul {max(matmul) / 1e9:.1f} GFLOP/s; ratio {ratio:.2f}")
    assert ratio >= 0.8
