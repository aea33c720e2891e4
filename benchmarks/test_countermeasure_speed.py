"""Countermeasure costs, run with `python -m pytest benchmarks/test_countermeasure_speed.py --benchmark-only -s`:
pre-processing seconds for the full CIFAR-10 training set, and per-batch stages as a ratio of a standard
epoch at the quick preset measured in the same test.

Epochs are compared in CPU time on one thread, not wall time: on a machine shared with other jobs the
wall time of one epoch varied by more than 2× between identical runs, CPU time on one thread does not."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from benchmark.data import ImageSet, balanced_subset, load_dataset
from benchmark.evaluation import evaluate
from benchmark.models import create_model
from benchmark.plugins import Context, Countermeasure
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.training import train_victim

ROUNDS = 2
ONE_EPOCH = dataclasses.replace(PRESETS["quick"], epochs=1, eval_every=10**6)
AUGMENT_LIMIT = 1.3  # a per-batch augmentation may add at most 30% to a standard epoch

# (label, countermeasure, its parameters, whether the 30% limit applies)
PER_BATCH = [
    *[(n, n, {}, True) for n in countermeasures.names() if "augment" in countermeasures.get(n).stages()],
    ("ueraser (no repeat)", "ueraser", {"repeats": 1}, True),
    ("ueraser (repeat epoch, K=5)", "ueraser", {"repeat_fraction": 1.0}, False),
    ("adv_train (adversarial epoch)", "adv_train", {"adv_epochs": 1}, False),
]


def _context(tmp_path: Path, preset=ONE_EPOCH) -> Context:
    return Context(torch.device("cpu"), seed=0, preset=preset, num_classes=10, cache_dir=tmp_path)


@pytest.fixture(scope="module")
def cifar_train(data_root: str) -> ImageSet:
    return load_dataset("cifar10", True, data_root, download=False)


# The purifiers fit a generative model first; their cost is benchmarks/test_purify_cost.py's.
@pytest.mark.parametrize("name", [n for n in countermeasures.names() if "preprocess" in countermeasures.get(n).stages()
                                  and countermeasures.get(n).family != "purification"])
def test_preprocess_full_training_set_under_a_minute(benchmark, cifar_train, tmp_path, name):
    cm = countermeasures.get(name)()
    ctx = _context(tmp_path, PRESETS["paper"])
    cm.setup(ctx)
    out = benchmark.pedantic(cm.run_preprocess, args=(cifar_train.images, cifar_train.labels, ctx), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.max
    benchmark.extra_info.update(images=len(out), seconds=seconds)
    print(f"\n{name}: {len(out)} images in {seconds:.1f} s")
    assert seconds < 60


@pytest.mark.parametrize("label, name, params, limited", PER_BATCH, ids=[c[0] for c in PER_BATCH])
def test_per_batch_cost_vs_a_standard_quick_epoch(benchmark, cifar_train, tmp_path, one_thread, label, name, params,
                                                  limited):
    subset = balanced_subset(cifar_train, ONE_EPOCH.train_per_class, ONE_EPOCH.subset_seed)
    test_images, test_labels = subset.images[:500], subset.labels[:500]
    cpu = torch.device("cpu")

    def cpu_seconds(run) -> float:
        start = time.process_time()
        run()
        return time.process_time() - start

    model = create_model(ONE_EPOCH.model, 10)
    # train_victim also evaluates on the test images and the training set; that is no part of the epoch.
    evaluation = cpu_seconds(lambda: (evaluate(model, test_images, test_labels, cpu),
                                      evaluate(model, subset.images, subset.labels, cpu)))

    def epoch_seconds(cm: Countermeasure) -> float:
        cm.setup(_context(tmp_path))
        run = lambda: train_victim(subset.images, subset.labels, test_images, test_labels, 10, ONE_EPOCH, cm, 0, cpu)
        return cpu_seconds(run) - evaluation

    baseline: list[float] = []
    ours: list[float] = []

    def one_round() -> None:
        baseline.append(epoch_seconds(countermeasures.get("none")()))
        ours.append(epoch_seconds(countermeasures.get(name)(**params)))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    ratio = min(ours) / min(baseline)
    benchmark.extra_info.update(none_cpu_s=min(baseline), countermeasure_cpu_s=min(ours), ratio=ratio)
    print(f"\n{label}: {ratio:.2f}× a standard epoch ({min(ours):.1f} vs {min(baseline):.1f} CPU s)")
    if limited:
        assert ratio <= AUGMENT_LIMIT
