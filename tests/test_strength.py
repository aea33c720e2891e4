"""The strength knob: every built-in protection has one, turning it moves the measured perturbation
monotonically, the budget holds on the uint8 output, and the default strength keeps the published ids."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.identity import digest, plugin_identity
from benchmark.metrics import perturbation_metrics
from benchmark.plugins import Strength
from benchmark.presets import get_preset
from benchmark.registry import methods
from methods.attacks import quantize
from methods.dh.hiding import HidingNetwork
from methods.dh.training import hide_all

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "results" / "leaderboards").glob("cifar10-quick.seed*.jsonl"))
CHEAP = {"lsp": [3.0, 6.0, 12.0], "ar": [0.5, 1.0, 2.0], "ops": [1, 3, 9], "cuda": [0.2, 0.5, 1.0],
         "semantic-add": [36.0, 30.0, 24.0]}


def test_every_protection_has_a_knob():
    """`clean` is the only built-in without one (it changes nothing)."""
    lacking = [n for n in methods.names() if methods.get(n).strength is None]
    assert lacking == ["clean"]
    for name in methods.names():
        knob = methods.get(name).strength
        if knob is not None:
            assert knob.param in {f.name for f in methods.get(name).param_fields()}, name
            assert knob.low <= getattr(methods.get(name)(), knob.param) <= knob.high, name


def test_the_default_strength_keeps_the_published_method_ids():
    published = {}
    for path in PUBLISHED:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            published[row["method"]] = row["method_id"]
    assert len(published) >= 12
    quick = get_preset("quick")
    for name, method_id in published.items():
        assert digest(plugin_identity(methods.get(name)(), quick)) == method_id, name


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_strength_moves_the_perturbation_monotonically(name, cifar_small, ctx):
    values = CHEAP[name]
    psnrs, l2s = [], []
    for value in values:
        method = methods.get(name)().with_strength(value)
        out = method(cifar_small.images, cifar_small.labels, ctx)  # checks the budget on the uint8 output
        stats = perturbation_metrics(cifar_small.images, out)
        psnrs.append(stats["psnr"])
        l2s.append(stats["l2_mean"])
    assert psnrs == sorted(psnrs, reverse=True) and len(set(psnrs)) == 3, psnrs
    assert l2s == sorted(l2s) and len(set(l2s)) == 3, l2s


def test_ops_sets_as_many_pixels_as_asked(cifar_small, ctx):
    out = methods.get("ops")(pixels=5)(cifar_small.images, cifar_small.labels, ctx)
    changed = (out != cifar_small.images).any(1).flatten(1).sum(1)
    assert changed.max() == 5 and changed.float().mean() > 4  # a pixel already at the colour stays unchanged
    one = methods.get("ops")()(cifar_small.images, cifar_small.labels, ctx)
    assert methods.get("ops")(pixels=1)(cifar_small.images, cifar_small.labels, ctx).equal(one)


def test_dh_scale_multiplies_the_hiding_residual(cifar_small):
    torch.manual_seed(0)
    net = HidingNetwork(1, 8, 2).eval()
    with torch.no_grad():  # an untrained network hides nothing: random weights give it a residual
        for weight in net.parameters():
            weight.normal_(0, 0.01)
    assignment = torch.arange(len(cifar_small.images)) % 10
    secrets = cifar_small.images[:10]
    device, quiet = torch.device("cpu"), lambda it=None, **kw: it
    base = hide_all(net, cifar_small.images, secrets, assignment, 0.0, device, quiet)
    half = hide_all(net, cifar_small.images, secrets, assignment, 0.0, device, quiet, scale=0.5)
    full, halved = (x.float() - cifar_small.images.float() for x in (base, half))
    inside = (base > 0) & (base < 255)  # where clipping did not cut the full residual
    assert inside.float().mean() > 0.9 and full.abs().max() > 4
    assert (halved - full / 2)[inside].abs().max() <= 1.0  # rounding to uint8
    drop = perturbation_metrics(cifar_small.images, half)["psnr"] - perturbation_metrics(cifar_small.images, base)["psnr"]
    assert drop == pytest.approx(6.02, abs=1.0)


def test_a_scaled_epsilon_scales_the_step():
    quick = get_preset("quick")
    for name in ("em", "tap", "rem"):
        default, half = (methods.get(name)(eps=e).settings(quick)["step_size"] for e in (8.0, 4.0))
        assert half == pytest.approx(default / 2), name


def test_value_for_predicts_from_one_measurement():
    amplitude = Strength("eps", "amplitude", 0.5, 64.0)
    assert amplitude.value_for(8.0, 32.0, 32.0 - 6.0206) == pytest.approx(16.0)
    assert amplitude.value_for(8.0, 32.0, 80.0) == 0.5  # clipped to the knob's range
    count = Strength("pixels", "count", 1, 1024, integer=True)
    assert count.value_for(1, 35.0, 25.0) == 10.0
    assert Strength("psnr", "psnr", 5.0, 80.0).value_for(28.0, 27.6, 30.0) == pytest.approx(30.4)
    with pytest.raises(ValueError, match="valid scales"):
        Strength("eps", "linear", 0, 1)


def test_with_strength_refuses_values_outside_the_knob():
    with pytest.raises(ValueError, match=r"em.eps must be in \[0.5, 64\]"):
        methods.get("em")().with_strength(100.0)
    with pytest.raises(ValueError, match="no strength knob"):
        methods.get("clean")().with_strength(1.0)


def test_a_fractional_linf_radius_holds_on_the_uint8_output(cifar_small, ctx):
    """Rounding a change of 4.64/255 would give 5/255: the change is kept to the radius's whole steps, and a
    whole radius is left exactly as plain rounding gives it."""
    images = cifar_small.images
    delta = torch.full(images.shape, 4.64 / 255)
    assert (quantize(images, delta, 4.64 / 255).int() - images.int()).max() == 4
    wide = torch.empty(images.shape).uniform_(-8 / 255, 8 / 255, generator=torch.Generator().manual_seed(0))
    assert quantize(images, wide, 8 / 255).equal(quantize(images, wide))
    out = methods.get("em")(eps=4.64)(images, cifar_small.labels, ctx)  # the engine's budget check passes
    assert (out.int() - images.int()).abs().max() == 4
