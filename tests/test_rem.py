"""REM: the inner loops push the right way, the output holds L∞ 8/255 as uint8, and a seed fixes it."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.models import create_model
from benchmark.presets import PRESETS
from methods.rem import RobustErrorMinimizing, _MinMinMax


def _minmax(adv_radius: float = 4.0, seed: int = 0, fit=None) -> tuple[_MinMinMax, torch.nn.Module]:
    """The two loops around a tinycnn, first fitted for 60 steps to `fit` (images, labels) when given."""
    torch.manual_seed(seed)
    model = create_model("tinycnn", 10)
    if fit is not None:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(60):
            loss = F.cross_entropy(model(fit[0]), fit[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    s = RobustErrorMinimizing(adv_radius=adv_radius, steps=10, adv_steps=5).settings(PRESETS["smoke"])
    return _MinMinMax(model, s, torch.Generator().manual_seed(seed)), model


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def test_attack_raises_the_loss_within_its_radius(cifar_small):
    x, y = cifar_small.images.float() / 255, cifar_small.labels
    minmax, model = _minmax(fit=(x, y))
    adv = minmax.attack(x, y)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert _loss(model, adv, y) > 1.5 * _loss(model, x, y)
    assert all(p.requires_grad for p in model.parameters()), "weight gradients are back on after the attack"


def test_noise_lowers_the_worst_case_loss(cifar_small):
    """Min-min-max: the adversary's best loss on the noisy images is below its best loss on the clean ones."""
    x, y = cifar_small.images.float() / 255, cifar_small.labels
    minmax, model = _minmax(fit=(x, y))
    delta = minmax.noise(x, y)
    assert delta.abs().max() <= 8 / 255 + 1e-6
    noisy, clean = _loss(model, minmax.attack((x + delta).clamp(0, 1), y), y), _loss(model, minmax.attack(x, y), y)
    assert noisy < 0.8 * clean, (noisy, clean)  # measured: 1.47 against 2.23


def test_zero_radius_is_plain_error_minimizing(cifar_small):
    minmax, _ = _minmax(adv_radius=0)
    x, y = cifar_small.images.float() / 255, cifar_small.labels
    assert torch.equal(minmax.attack(x, y), x)


def test_rem_is_uint8_within_budget_and_seeded(cifar_small, ctx):
    rem = RobustErrorMinimizing(train_steps=3)
    x, y = cifar_small.images, cifar_small.labels
    out = rem(x, y, ctx)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    diff = (out.int() - x.int()).abs()
    assert diff.max() <= 8 and (diff > 0).float().mean() > 0.5
    assert torch.equal(out, rem(x, y, ctx))
    ctx.seed = 1
    assert not torch.equal(out, rem(x, y, ctx))
    assert set(ctx.notes) >= {"settings", "crafting_acc", "crafting_adv_acc"}
