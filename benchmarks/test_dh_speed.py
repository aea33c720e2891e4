"""Semantic Deep Hiding time targets on the CPU, run with
`python -m pytest benchmarks/test_dh_speed.py --benchmark-only`:
hiding-network training plus generation at the quick preset (5,000 CIFAR-10 images, fastcnn
surrogate) under 15 minutes; generation alone over the 50,000 CIFAR-10 training images under 2 minutes."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.data import load_dataset
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import make_context, protected_set
from benchmark.progress import quiet
from methods.dh.hiding import HidingNetwork
from methods.dh.method import assign_secrets
from methods.dh.semantic import procedural_images
from methods.dh.training import hide_all, measured_subset, reveal_psnr

QUICK_TARGET_S = 15 * 60
GENERATION_TARGET_S = 2 * 60


@pytest.fixture(scope="module")
def quick_config(data_root, tmp_path_factory) -> GridConfig:
    config = GridConfig(preset="quick", data_root=data_root, cache_dir=str(tmp_path_factory.mktemp("cache")), device="cpu")
    make_context(config, 0, 10, quiet).surrogate()  # the engine's clean surrogate is not part of DH's cost
    return config


def test_quick_training_plus_generation(benchmark, quick_config):
    """SIG, hiding-network training (LFC through the fastcnn surrogate) and hiding 5,000 images."""
    result: dict = {}

    def run() -> None:
        _, gen = protected_set(quick_config, "dh", 0)
        result.update(gen)

    benchmark.pedantic(run, rounds=1, iterations=1)
    notes = result["notes"]
    benchmark.extra_info.update(
        train_s=notes["hiding_network"]["train_s"], stego_psnr=result["perturbation"]["psnr"],
        revealed_psnr=notes["revealed_psnr"], feature_spread=notes["feature_spread"],
    )
    print(f"\nquick dh: {benchmark.stats.stats.max:.0f} s in all, training {notes['hiding_network']['train_s']:.0f} s")
    assert not notes["hiding_network"]["cached"]
    assert benchmark.stats.stats.max < QUICK_TARGET_S


def test_generation_over_50k_images(benchmark, quick_config):
    """Hiding the assigned semantic image in all 50,000 CIFAR-10 training images with the quick
    preset's trained network, plus the revealed-PSNR measurement the method reports."""
    (weights,) = Path(quick_config.cache.root, "hiding-net").glob("*.pt")
    settings = quick_config.method("dh").settings(quick_config.preset_obj)
    net = HidingNetwork(settings["blocks"], settings["width"], settings["dense_layers"])
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval().requires_grad_(False)
    full = load_dataset("cifar10", True, quick_config.data_root, download=False)

    def run() -> torch.Tensor:
        secrets, secret_labels = procedural_images(10, settings["semantic_per_class"], 32, 0)
        assignment = assign_secrets(full.labels, secret_labels, "class", torch.Generator().manual_seed(0))
        out = hide_all(net, full.images, secrets, assignment, 0.0, torch.device("cpu"), quiet)
        sub = measured_subset(len(out))
        reveal_psnr(net, out[sub], secrets[assignment[sub]], settings["reveal_noise"], torch.Generator(), torch.device("cpu"))
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    assert out.shape == full.images.shape
    images_per_s = len(out) / benchmark.stats.stats.max
    benchmark.extra_info.update(images_per_s=images_per_s)
    print(f"\n50k generation: {benchmark.stats.stats.max:.0f} s ({images_per_s:.0f} images/s)")
    assert benchmark.stats.stats.max < GENERATION_TARGET_S
