"""Randomness: plugins and the trainer leave torch's global RNG as they found it; streams are independent."""
from __future__ import annotations

import pytest
import torch

from benchmark.models import create_model
from benchmark.plugins import Context
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures, methods
from benchmark.seeding import generator, stream_seed
from benchmark.training import mixed_precision, train_victim


@pytest.fixture
def small_ctx(tmp_path) -> Context:
    surrogate = create_model("tinycnn", 10).eval().requires_grad_(False)
    return Context(torch.device("cpu"), seed=3, preset=PRESETS["smoke"], num_classes=10, cache_dir=tmp_path,
                   surrogate_fn=lambda arch: surrogate)


@pytest.mark.parametrize("name, params", [
    ("em", {"max_rounds": 1, "train_steps": 1, "steps": 1}), ("tap", {"steps": 1}), ("lsp", {}),
])
def test_methods_leave_the_global_rng_as_they_found_it(cifar_small, small_ctx, name, params):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    methods.get(name)(**params)(cifar_small.images, cifar_small.labels, small_ctx)
    assert torch.equal(torch.get_rng_state(), state)


def test_countermeasures_and_the_trainer_leave_the_global_rng_as_they_found_it(cifar_small, small_ctx):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    dvae = countermeasures.get("dvae")(epochs=1, second_stage=False)
    dvae.setup(small_ctx)
    dvae.preprocess(cifar_small.images, cifar_small.labels, small_ctx)
    adv = countermeasures.get("adv_train")(steps=1)
    adv.setup(small_ctx)
    train_victim(cifar_small.images, cifar_small.labels, cifar_small.images, cifar_small.labels, 10,
                 PRESETS["smoke"], adv, 0, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)


def test_streams_of_one_seed_are_unrelated_and_reproducible():
    names = ["victim/batches", "victim/init", "lsp/clusters", "em/noise", "default"]
    assert len({stream_seed(0, n) for n in names}) == len(names)
    draws = [torch.rand(4, generator=generator(0, n)) for n in names]
    assert not any(torch.equal(a, b) for i, a in enumerate(draws) for b in draws[i + 1:])
    assert torch.equal(torch.rand(4, generator=generator(0, "em/noise")), draws[3])


def test_a_countermeasure_s_own_training_step_runs_in_fp32_on_every_device():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert mixed_precision(cuda, countermeasures.get("none")())
    assert not mixed_precision(cuda, countermeasures.get("adv_train")())
    assert not mixed_precision(cuda, countermeasures.get("ueraser")())
    assert not mixed_precision(cpu, countermeasures.get("none")())
    assert not mixed_precision(cuda, countermeasures.get("none")(), amp=False)
