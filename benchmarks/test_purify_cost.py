"""Cost of the purification countermeasures at the quick preset (5,000 images), split into fitting
and purifying, as a ratio to one quick-preset victim training measured in the same run, and
extrapolated to the 50,000-image training set. Run with
`python -m pytest benchmarks/test_purify_cost.py --benchmark-only -s` (about 15 minutes on 2 CPU cores)."""
from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from benchmark.data import heldout_split, load_splits
from benchmark.plugins import Context, Countermeasure
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.training import train_victim

FULL_TRAIN_SET = 50_000
FIT_PHASES = ("dvae stage", "ddpm train")  # progress bars of the fitting phases; the rest is purifying


class PhaseClock:
    """A progress factory that records how long each bar's loop ran, by its description."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, iterable: Any = None, desc: str = "", **kw: Any) -> Any:
        return self._timed(iterable, desc)

    def _timed(self, iterable: Any, desc: str) -> Any:
        start = time.perf_counter()
        yield from iterable
        self.seconds[desc] = self.seconds.get(desc, 0.0) + time.perf_counter() - start

    def fit_seconds(self) -> float:
        return sum(s for d, s in self.seconds.items() if d.startswith(FIT_PHASES))


@pytest.fixture(scope="module")
def quick(data_root):
    train, test = load_splits("cifar10", data_root, "quick")
    heldout = heldout_split("cifar10", data_root, "quick")
    start = time.perf_counter()
    train_victim(train.images, train.labels, test.images, test.labels, 10, PRESETS["quick"], Countermeasure(), 0,
                 torch.device("cpu"))
    return train, heldout, time.perf_counter() - start


@pytest.mark.parametrize("name, max_ratio", [("dvae", 10.0), ("diffusion", 20.0)])
def test_purifier_cost_at_quick(benchmark, quick, tmp_path, name, max_ratio):
    train, heldout, victim_s = quick
    clock = PhaseClock()
    ctx = Context(torch.device("cpu"), seed=0, preset=PRESETS["quick"], num_classes=10, cache_dir=tmp_path,
                  progress=clock, heldout_fn=lambda: (heldout.images, heldout.labels))
    cm = countermeasures.get(name)()
    benchmark.pedantic(lambda: cm.run_preprocess(train.images, train.labels, ctx), rounds=1, iterations=1)
    total = benchmark.stats.stats.max
    fit, purify = clock.fit_seconds(), total - clock.fit_seconds()
    # D-VAE fits on the training set itself (cost ∝ images); the DDPM's training is a fixed number of steps.
    full = (fit + purify) * FULL_TRAIN_SET / len(train) if name == "dvae" else fit + purify * FULL_TRAIN_SET / len(train)
    ratio = total / victim_s
    benchmark.extra_info.update(fit_s=fit, purify_s=purify, victim_s=victim_s, ratio=ratio, full_set_s=full)
    print(f"\n{name} on {len(train)} images: fit {fit:.0f} s + purify {purify:.0f} s = {total:.0f} s "
          f"({ratio:.1f}x one quick victim training of {victim_s:.0f} s); 50,000 images: ~{full / 60:.0f} min")
    assert ratio < max_ratio
