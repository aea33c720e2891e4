"""The CUDA-graph training path (runs only where CUDA is available; CI has none)."""
from __future__ import annotations

import copy
import dataclasses
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from benchmark.models import create_model
from benchmark.plugins import Countermeasure
from benchmark.presets import get_preset
from benchmark.registry import countermeasures
from benchmark.training import capture_cuda_graph, release_cuda_graph, train_victim

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_graphed_step_matches_the_plain_step():
    torch.manual_seed(0)
    device = torch.device("cuda")
    plain = create_model("resnet18", 10).to(device).train()
    graphed = copy.deepcopy(plain)
    x = torch.rand(32, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (32,), device=device)
    capture_cuda_graph(graphed, x.clone(), nullcontext())
    for model in (plain, graphed):
        F.cross_entropy(model(x), y).backward()
    for (name, p), q in zip(plain.named_parameters(), graphed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)
    for (name, a), b in zip(plain.named_buffers(), graphed.buffers()):
        torch.testing.assert_close(b, a, msg=name)  # one BatchNorm update each: capture left none behind
    release_cuda_graph(graphed)
    graphed(torch.rand(7, 3, 32, 32, device=device))  # plain forward again: any batch size


def test_train_victim_graphs_standard_steps_only():
    device = torch.device("cuda")
    # Learnable in a few epochs: each class is a flat colour plus noise (8 epochs reach ~0.9 on the CPU).
    gen = torch.Generator().manual_seed(0)
    palette = torch.randint(0, 256, (10, 3), generator=gen)
    y = torch.arange(10).repeat(40)
    noise = torch.randint(-40, 41, (400, 3, 32, 32), generator=gen)
    x = (palette[y][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8)
    preset = dataclasses.replace(get_preset("smoke"), epochs=8)
    none = countermeasures.get("none")()
    graphed = train_victim(x, y, x[:100], y[:100], 10, preset, none, 0, device)
    plain = train_victim(x, y, x[:100], y[:100], 10, preset, none, 0, device, cuda_graph=False)
    assert graphed.cuda_graph and not plain.cuda_graph
    assert graphed.final_acc > 0.6 and plain.final_acc > 0.6
    assert abs(graphed.final_acc - plain.final_acc) < 0.2
    graphed.model.train()(torch.rand(3, 3, 32, 32, device=device))  # released after training: any batch size

    class OwnStep(Countermeasure):
        def training_step(self, model, x, y, epoch):
            return F.cross_entropy(model(x), y)

    assert not train_victim(x, y, x[:100], y[:100], 10, preset, OwnStep(), 0, device).cuda_graph
