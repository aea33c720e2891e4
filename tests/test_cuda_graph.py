"""The CUDA-graph training path (runs only where CUDA is available; CI has none)."""
from __future__ import annotations

import copy
import dataclasses
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from benchmark.models import create_model
from benchmark.plugins import Context, Countermeasure
from benchmark.presets import get_preset
from benchmark.registry import countermeasures
from benchmark.tools.fused import FusedJob, train_victims_fused
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


def colour_classes() -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable in a few epochs: each class is a flat colour plus noise (8 epochs reach ~0.9 on the CPU)."""
    gen = torch.Generator().manual_seed(0)
    palette = torch.randint(0, 256, (10, 3), generator=gen)
    y = torch.arange(10).repeat(40)
    noise = torch.randint(-40, 41, (400, 3, 32, 32), generator=gen)
    return (palette[y][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8), y


def test_train_victim_graphs_standard_steps_only():
    device = torch.device("cuda")
    x, y = colour_classes()
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


def test_fused_victims_graphed_match_the_eager_fused_ones():
    device = torch.device("cuda")
    x, y = colour_classes()
    preset = dataclasses.replace(get_preset("smoke"), epochs=8)
    jobs = [FusedJob(x, y, countermeasures.get(name)(), seed) for name, seed in (("none", 0), ("grayscale", 1))]
    graphed = train_victims_fused(jobs, preset, device, x[:100], y[:100], 10)
    eager = train_victims_fused(jobs, preset, device, x[:100], y[:100], 10, cuda_graph=False)
    for g, e in zip(graphed, eager):
        assert g.cuda_graph and not e.cuda_graph
        assert g.final_acc > 0.6 and e.final_acc > 0.6
        assert abs(g.final_acc - e.final_acc) < 0.2
        g.model.train()(torch.rand(3, 3, 32, 32, device=device))  # each model is a plain module again


def test_graphed_pgd_is_torchattacks_pgd():
    """adv_train's graphed PGD on CUDA takes torchattacks' random start and steps: with the same generator state
    both end at (nearly) the same adversarial batch; the graph is captured once and reused for a new batch."""
    device = torch.device("cuda")
    model = create_model("fastcnn", 10).to(device, memory_format=torch.channels_last).train()
    at = countermeasures.get("adv_train")()
    x = torch.rand(64, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,), device=device)
    for batch in range(2):
        xb = x.roll(batch, 0)
        out = {}
        for graphs in (True, False):
            at.cuda_graphs = graphs
            out[graphs] = at.perturb(model, xb, y, torch.Generator(device).manual_seed(batch))
            assert model.training  # the mode it found
        graph = at._gradient
        assert graph is not None
        assert (out[True] - xb).abs().max() <= 8 / 255 + 1e-6 and 0 <= out[True].min() and out[True].max() <= 1
        same = (out[True] - out[False]).abs() < 1e-6
        assert same.float().mean() > 0.99, same.float().mean()  # a sign may flip where a gradient is ~0
    assert at._gradient is graph  # reused for the second batch


def test_adv_train_runs_graphed_and_learns(tmp_path):
    device = torch.device("cuda")
    x, y = colour_classes()
    preset = dataclasses.replace(get_preset("smoke"), epochs=8)
    results = {}
    for graph in (True, False):
        at = countermeasures.get("adv_train")(eps=2.0, alpha=0.5)
        at.setup(Context(device, 0, preset, 10, tmp_path))
        results[graph] = train_victim(x, y, x[:100], y[:100], 10, preset, at, 0, device, cuda_graph=graph)
    assert results[True].cuda_graph and not results[False].cuda_graph
    assert results[True].final_acc > 0.5 and abs(results[True].final_acc - results[False].final_acc) < 0.2
