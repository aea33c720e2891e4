"""The victim trainer (benchmark/training.py), on generated data: it learns a learnable task, is deterministic in
its seed, evaluates on the preset's schedule and stops on a diverged loss."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.training import TrainingDiverged, train_victim

PRESET = dataclasses.replace(PRESETS["smoke"], epochs=4, eval_every=2, batch_size=32)


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes told apart by the mean brightness: a tiny CNN learns it in a few epochs."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    base = torch.where(labels[:, None, None, None] == 1, 170, 80)
    images = (base + torch.randint(-40, 40, (n, 3, 32, 32), generator=gen)).clamp(0, 255).to(torch.uint8)
    return images, labels


def _train(seed: int = 0, preset=PRESET, **kw):
    x, y = _task(256, 0)
    tx, ty = _task(128, 1)
    return train_victim(x, y, tx, ty, 2, preset, countermeasures.get("none")(), seed, torch.device("cpu"), **kw)


def test_it_learns_a_learnable_task_and_evaluates_on_the_schedule():
    seen = []
    result = _train(on_eval=lambda epoch, model: seen.append(epoch))
    assert [epoch for epoch, _ in result.history] == [2, 4] == seen  # every eval_every epochs and after the last
    assert result.final_acc == result.history[-1][1] > 0.9
    assert result.peak_acc == max(acc for _, acc in result.history)


def test_the_seed_decides_the_weights_bit_for_bit():
    a, b, c = _train(0), _train(0), _train(1)
    weights = [torch.cat([p.flatten() for p in r.model.parameters()]) for r in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert a.history == b.history


def test_a_diverged_loss_stops_training_with_a_clear_error():
    with pytest.raises(TrainingDiverged, match="loss became nan"):
        _train(preset=dataclasses.replace(PRESET, lr=float("inf")))
