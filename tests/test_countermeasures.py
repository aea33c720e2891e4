"""Countermeasures change what they must and nothing else."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.metrics import perturbation_metrics
from benchmark.registry import countermeasures


@pytest.mark.parametrize("name", ["none", "grayscale", "jpeg10"])
def test_preprocess_keeps_shape_dtype_and_is_deterministic(name, cifar_small, ctx):
    cm = countermeasures.get(name)()
    a = cm.run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    b = cm.run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    assert a.dtype == torch.uint8 and a.shape == cifar_small.images.shape and torch.equal(a, b)


def test_none_uses_no_stage():
    assert countermeasures.get("none").stages() == []


def test_grayscale_gives_three_equal_channels_of_pil_luma(cifar_small, ctx):
    out = countermeasures.get("grayscale")().run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    for i in range(0, len(out), 37):
        pil = Image.fromarray(cifar_small.images[i].permute(1, 2, 0).numpy()).convert("L")
        assert torch.equal(out[i, 0], torch.from_numpy(np.array(pil)))


def test_jpeg10_lowers_psnr_more_than_jpeg_quality_90(cifar_small, ctx):
    cls = countermeasures.get("jpeg10")
    q10 = cls().run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    q90 = cls(quality=90).run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    psnr10 = perturbation_metrics(cifar_small.images, q10)["psnr"]
    psnr90 = perturbation_metrics(cifar_small.images, q90)["psnr"]
    assert psnr10 < 30 < psnr90


def test_bad_parameter_is_named():
    from benchmark.plugins import build

    with pytest.raises(ValueError, match="quality must be in 1..100, got 0"):
        build(countermeasures.get("jpeg10"), {"quality": "0"})
    with pytest.raises(ValueError, match="no parameter 'qual'; valid parameters: quality"):
        build(countermeasures.get("jpeg10"), {"qual": "5"})
