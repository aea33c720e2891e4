"""AR and CUDA on real CIFAR-10 images: uint8 output, budgets on the saved set, seeds, one AR process or
one kernel per class, and AR processes that stay finite however many classes there are."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.data import load_splits
from benchmark.engine.recipe import protected_set
from benchmark.plugins import Context
from benchmark.presets import PRESETS
from benchmark.registry import methods
from methods.ar import (
    CROP,
    autoregress,
    draw_coefficients,
    find_processes,
    response,
    stable,
)
from methods.cuda import KERNEL, convolve


def _ctx(tmp_path: Path, seed: int = 0, num_classes: int = 10) -> Context:
    return Context(torch.device("cpu"), seed=seed, preset=PRESETS["smoke"], num_classes=num_classes, cache_dir=tmp_path)


@pytest.fixture(scope="module")
def ar_runs(cifar_small, tmp_path_factory) -> dict[str, torch.Tensor]:
    """AR on 200 real images: twice at seed 0, once at seed 1."""
    ar = methods.get("ar")()
    return {key: ar(cifar_small.images, cifar_small.labels, _ctx(tmp_path_factory.mktemp(key), seed))
            for key, seed in (("a", 0), ("b", 0), ("seed1", 1))}


@pytest.mark.slow
def test_ar_holds_l2_1_on_the_saved_uint8_output(smoke_config):
    _, gen = protected_set(smoke_config, smoke_config.method("ar"), 0)
    train, _ = load_splits(smoke_config.dataset, smoke_config.data_root, smoke_config.preset)
    saved = torch.load(smoke_config.cache.paths("protected", gen["key"])[0], weights_only=True)["images"]
    assert saved.dtype == torch.uint8 and saved.shape == train.images.shape
    l2 = (saved.double() - train.images.double()).flatten(1).norm(dim=1) / 255
    assert l2.max() <= 1.0 and l2.median() > 0.98  # rounding stays inside the ball; clipping only shortens it
    assert gen["notes"]["settings"] == {"min_response": 10.0}


@pytest.mark.slow
def test_ar_depends_on_the_seed_only(ar_runs, cifar_small):
    assert ar_runs["a"].dtype == torch.uint8 and ar_runs["a"].shape == cifar_small.images.shape
    assert torch.equal(ar_runs["a"], ar_runs["b"]) and not torch.equal(ar_runs["a"], ar_runs["seed1"])


@pytest.mark.slow
def test_ar_noise_follows_its_class_s_process(ar_runs, cifar_small, tmp_path):
    coefficients, _ = methods.get("ar")().processes(10, 3, _ctx(tmp_path))
    delta = (ar_runs["a"].double() - cifar_small.images.double()) / 255
    assert (delta.flatten(1) != 0).any(1).all(), "every image gets noise"
    # The "perfect model" of the paper: the class is the process whose filter leaves the least prediction error.
    errors = response(delta, coefficients)
    assert (errors.argmin(1) == cifar_small.labels).float().mean() > 0.95
    assert coefficients.unique(dim=0).shape[0] == 10


def test_ar_noise_is_an_exact_recurrence_of_its_coefficients():
    gen = torch.Generator().manual_seed(0)
    coefficients, _ = find_processes(2, 3, 10.0, gen)
    start = torch.randn(4, 3, 32 + CROP, 32 + CROP, generator=gen, dtype=torch.float64)
    noise = autoregress(coefficients[[0, 0, 1, 1]], start)
    assert noise.shape == (4, 3, 32, 32)
    errors = response(noise / noise.flatten(1).norm(dim=1)[:, None, None, None], coefficients)
    assert errors[:2, 0].max() < 1e-9 and errors[2:, 1].max() < 1e-9  # two images, one process
    assert errors[:2, 1].min() > 0.5 and errors[2:, 0].min() > 0.5  # another process leaves an error


def test_ar_coefficients_are_normalised_per_channel():
    coefficients = draw_coefficients(1000, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(coefficients.sum((2, 3)), torch.ones(1000, 3, dtype=torch.float64))
    assert (coefficients[:, :, -1, -1] == 0).all()


def test_a_process_divided_by_a_near_zero_sum_is_unstable():
    # Like the official CIFAR-100 process 9: one channel's weights summed to 2.4e7 after normalising.
    coefficients = draw_coefficients(1, 3, torch.Generator().manual_seed(0))
    coefficients[0, 1] *= 2.4e7
    start = torch.randn(3, 3, 32 + CROP, 32 + CROP, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    norms = autoregress(coefficients.expand(3, -1, -1, -1), start).flatten(1).norm(dim=1)
    assert not stable(norms[None]).item()


@pytest.mark.slow
def test_every_one_of_100_classes_gets_finite_nonzero_noise(cifar_small, tmp_path):
    # The official CIFAR-100 coefficients had a class whose noise was NaN (its images came out black).
    ctx = _ctx(tmp_path, num_classes=100)
    ar = methods.get("ar")()
    labels = torch.arange(len(cifar_small.labels)) % 100
    out = ar(cifar_small.images, labels, ctx)
    assert (out != cifar_small.images).flatten(1).any(1).all() and ctx.notes["settings"] == {"min_response": 3.0}
    coefficients, _ = ar.processes(100, 3, ctx)
    starts = torch.randn(100 * 5, 3, 32 + CROP, 32 + CROP, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    norms = autoregress(coefficients.repeat_interleave(5, 0), starts).flatten(1).norm(dim=1)
    assert norms.isfinite().all() and (norms > 0).all() and norms.max() < 1e4


def test_a_search_that_finds_too_few_processes_names_the_setting(monkeypatch):
    monkeypatch.setattr("methods.ar.MAX_DRAWS", 4096)
    with pytest.raises(RuntimeError, match=r"found 1 of 10 AR processes in 4096 candidates.*ar.min_response"):
        find_processes(10, 3, 1e9, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def cuda_run(cifar_small, tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor]:
    """CUDA on 200 real images at seed 0, and the class kernels it drew."""
    ctx = _ctx(tmp_path_factory.mktemp("cuda"))
    cuda = methods.get("cuda")()
    return cuda(cifar_small.images, cifar_small.labels, ctx), cuda.kernels(10, ctx)


def test_cuda_is_uint8_and_depends_on_the_seed_only(cuda_run, cifar_small, tmp_path):
    out, _ = cuda_run
    assert out.dtype == torch.uint8 and out.shape == cifar_small.images.shape
    cuda = methods.get("cuda")()
    assert torch.equal(out, cuda(cifar_small.images, cifar_small.labels, _ctx(tmp_path)))
    assert not torch.equal(out, cuda(cifar_small.images, cifar_small.labels, _ctx(tmp_path, seed=1)))
    assert str(cuda.budget()) == "unbounded (reports PSNR/SSIM)"


def test_cuda_filters_each_image_with_its_class_s_kernel(cuda_run, cifar_small):
    out, kernels = cuda_run
    assert kernels.isfinite().all() and (kernels == 1.0).flatten(1).sum(1).eq(1).all()
    assert ((kernels >= 0) & (kernels <= 1.0)).all() and kernels.unique(dim=0).shape[0] == 10
    # Fit a 3×3 kernel (and an offset for the truncation) to every (clean, protected) pair by least squares.
    x = cifar_small.images.double() / 255
    windows = F.unfold(x.flatten(0, 1)[:, None], KERNEL, padding=KERNEL // 2)  # (n·C)×9×HW
    design = windows.unflatten(0, (len(x), 3)).transpose(2, 3).flatten(1, 2)
    design = torch.cat([design, torch.ones_like(design[..., :1])], 2)
    fitted = torch.linalg.lstsq(design, out.double().flatten(1)[..., None] / 255).solution[:, :9, 0]
    fitted = fitted / fitted.sum(1, keepdim=True)
    truth = (kernels / kernels.sum((1, 2), keepdim=True)).flatten(1)
    assert (fitted - truth[cifar_small.labels]).abs().max() < 0.01
    assert (torch.cdist(fitted, truth).argmin(1) == cifar_small.labels).all()


def test_cuda_gives_a_constant_image_one_result_per_class(tmp_path):
    labels = torch.arange(10).repeat(3)
    images = torch.full((30, 3, 32, 32), 128, dtype=torch.uint8)
    ctx = _ctx(tmp_path)
    cuda = methods.get("cuda")()
    out = cuda(images, labels, ctx)
    kernels = cuda.kernels(10, ctx)
    for c in range(10):
        same = out[labels == c]
        assert (same == same[0]).all()
        assert torch.equal(same[0], (convolve(images[:1].double() / 255, kernels[c]) * 255).to(torch.uint8)[0])
    assert len({tuple(out[c].flatten().tolist()) for c in range(10)}) == 10


def test_cuda_leaves_a_black_image_black(tmp_path):
    out = methods.get("cuda")()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]), _ctx(tmp_path))
    assert (out == 0).all()


@pytest.mark.parametrize("name, params, message", [
    ("ar", {"eps": 0.0}, r"eps must be > 0 .*got 0.0"),
    ("ar", {"min_response": -1.0}, r"min_response must be ≥ 0 .*got -1.0"),
    ("cuda", {"blur": 0.0}, r"blur must be > 0 .*got 0.0"),
])
def test_bad_parameters_name_the_value_and_the_valid_range(name, params, message):
    with pytest.raises(ValueError, match=message):
        methods.get(name)(**params)
