"""`bands`: the coarse-band share of known perturbations, and what pre-processing keeps of them."""
from __future__ import annotations

import pytest
import torch

from benchmark.cli import main
from benchmark.registry import countermeasures
from benchmark.tools.spectrum import haar_ll_share, kept_share


def _checkerboard(n: int = 4) -> torch.Tensor:
    i = torch.arange(32)
    return ((i[:, None] + i[None, :]) % 2 * 2 - 1).float().expand(n, 3, 32, 32)


def test_coarse_band_share_of_constant_checkerboard_and_white_noise():
    assert haar_ll_share(torch.full((4, 3, 32, 32), 8.0)) == pytest.approx(1.0)
    assert haar_ll_share(_checkerboard()) == pytest.approx(0.0, abs=1e-12)
    noise = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert haar_ll_share(noise) == pytest.approx(0.25, abs=0.01)


def _made(name: str, ctx):
    cm = countermeasures.get(name)()
    cm.setup(ctx)
    return cm


def test_a_box_filter_keeps_a_flat_offset_and_removes_a_checkerboard(cifar_small, ctx):
    clean = (cifar_small.images.int() // 2 + 64).to(torch.uint8)  # room for ±8 without clipping
    flat = (clean.int() + 8).to(torch.uint8)
    checker = (clean.int() + 8 * _checkerboard(len(clean)).int()).to(torch.uint8)
    mean = _made("mean_filter", ctx)
    assert kept_share(clean, flat, mean, cifar_small.labels, ctx) > 0.95
    assert kept_share(clean, checker, mean, cifar_small.labels, ctx) < 0.05
    assert kept_share(clean, checker, _made("grayscale", ctx), cifar_small.labels, ctx) == pytest.approx(1.0, abs=0.01)


def test_cli_prints_a_row_per_method_and_rejects_a_training_countermeasure(smoke_config, data_root, capsys):
    base = ["bands", "ops,lsp", "--preset", "smoke", "--data-root", data_root,
            "--cache-dir", str(smoke_config.cache.root), "--images", "200"]
    assert main([*base, "--countermeasures", "median_filter,resize", "--probe"]) == 0
    out = capsys.readouterr().out
    assert "kept: median_filter" in out and "kept: resize" in out
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["ops", "lsp"]
    probe = out[out.index("linear probe"):].splitlines()
    assert [line.split()[0] for line in probe[3:]] == ["ops", "lsp"]
    assert main([*base, "--countermeasures", "adv_train"]) == 2
    assert "'adv_train' does not pre-process the images; valid: " in capsys.readouterr().err


def test_probe_reads_a_class_wise_pattern_and_not_label_free_noise():
    from benchmark.tools.spectrum import probe_accuracy

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (400,), generator=gen)
    patterns = torch.randn(10, 3, 8, 8, generator=gen)
    noise = torch.randn(400, 3, 8, 8, generator=gen)
    assert probe_accuracy(patterns[labels] + 0.5 * noise, labels) > 0.95
    assert probe_accuracy(noise, labels) < 0.3  # chance: 0.1
