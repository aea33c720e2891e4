"""Folded eval-mode copies compute the victim's eval-mode function and leave the victim as it was."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.folding import folded
from benchmark.models import create_model


def _trained_a_little(name: str) -> nn.Module:
    """A victim whose batch norms hold non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    model = create_model(name, 10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        x = torch.rand(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 10, (16,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize("name", ["tinycnn", "fastcnn", "resnet18"])
def test_folded_copy_has_no_batch_norm_and_the_same_outputs_and_input_gradients(name):
    model = _trained_a_little(name)
    copy = folded(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules()), "every conv-BN pair is folded"
    assert model.training and all(p.requires_grad for p in model.parameters()), "the victim is left as it was"
    assert not copy.training and not any(p.requires_grad for p in copy.parameters())
    x = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    model.eval()
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_model, out_copy = model(a), copy(b)
    assert torch.allclose(out_model, out_copy, atol=1e-4, rtol=1e-4)
    grads = [torch.autograd.grad(nn.functional.cross_entropy(o, torch.arange(8)), v)[0]
             for o, v in ((out_model, a), (out_copy, b))]
    assert torch.allclose(*grads, atol=1e-6, rtol=1e-3)


class _DataDependent(nn.Module):
    """A victim torch.fx cannot trace: its forward branches on a value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x))
        return h.mean((2, 3)) if h.sum() > 0 else -h.mean((2, 3))


def test_an_untraceable_model_is_copied_unfolded():
    model = _DataDependent()
    copy = folded(model)
    assert copy is not model and isinstance(copy.bn, nn.BatchNorm2d) and not copy.training
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(copy(x), model.eval()(x))
