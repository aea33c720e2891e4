"""Purification countermeasures on real CIFAR-10 at the smoke scale: shape, determinism, and what
they do to a real perturbation; the diffusion purifier's DDPM cache and checkpoint errors."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from benchmark.data import ImageSet, load_dataset
from benchmark.identity import effective_settings
from benchmark.plugins import Context, build
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures, methods
from countermeasures import purify

PURIFIERS = ["dvae", "diffusion"]
# The smoke preset's 4 D-VAE epochs are sized for its 1,000 images; these tests purify 200.
SETTINGS = {"dvae": {"epochs": 10}, "diffusion": {}}
# Random ±48/255 noise on every value: larger than what either purifier loses of a clean image at
# this scale, so purification must land closer to the clean image than the noisy one was.
NOISE = 48


def mean_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image L2 distance in [0,1] pixel units."""
    return ((a.float() - b.float()) / 255).flatten(1).norm(dim=1).mean().item()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The smoke-scale networks are so small that OpenMP synchronisation dominates their cost: on a
    loaded 2-core machine a second thread made them about 10x slower (2 threads: 42 s, 1: 3.5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def purify_ctx(data_root: str, tmp_path_factory: pytest.TempPathFactory) -> Context:
    """Smoke context whose held-out images are the CIFAR-10 test split (disjoint from the training
    images purified here); one cache for the module, so the DDPM trains once."""
    test = load_dataset("cifar10", False, data_root, download=False)
    return Context(torch.device("cpu"), seed=0, preset=PRESETS["smoke"], num_classes=10,
                   cache_dir=tmp_path_factory.mktemp("purify-cache"), heldout_fn=lambda: (test.images, test.labels))


@pytest.fixture(scope="module")
def inputs(cifar_small: ImageSet, purify_ctx: Context) -> dict[str, torch.Tensor]:
    """The clean images, their LSP-protected copy (L2 1.30) and a heavily noised copy."""
    gen = torch.Generator().manual_seed(1)
    signs = torch.randint(0, 2, cifar_small.images.shape, generator=gen) * 2 - 1
    return {
        "clean": cifar_small.images,
        "lsp": methods.get("lsp")()(cifar_small.images, cifar_small.labels, purify_ctx),
        "noisy": (cifar_small.images.int() + NOISE * signs).clamp(0, 255).to(torch.uint8),
    }


@pytest.fixture(scope="module")
def purified(cifar_small, purify_ctx, inputs) -> Callable[[str], dict[str, torch.Tensor]]:
    """`purified(name)`: each input purified by that countermeasure, computed once per module."""
    done: dict[str, dict[str, torch.Tensor]] = {}

    def run(name: str) -> dict[str, torch.Tensor]:
        if name not in done:
            cm = countermeasures.get(name)(**SETTINGS[name])
            done[name] = {k: cm.run_preprocess(v, cifar_small.labels, purify_ctx) for k, v in inputs.items()}
        return done[name]

    return run


@pytest.mark.parametrize("name", PURIFIERS)
def test_keeps_shape_dtype_and_is_deterministic(name, purified, cifar_small, purify_ctx, inputs):
    again = countermeasures.get(name)(**SETTINGS[name]).run_preprocess(inputs["lsp"], cifar_small.labels, purify_ctx)
    assert again.dtype == torch.uint8 and again.shape == inputs["lsp"].shape
    assert torch.equal(again, purified(name)["lsp"])


@pytest.mark.parametrize("name", PURIFIERS)
def test_shrinks_a_real_perturbation_and_keeps_the_image(name, purified, inputs):
    """What LSP's perturbation still changes after purification is less than the perturbation itself,
    while a purified clean image stays far closer to its original than to another image."""
    out = purified(name)
    left, before = mean_l2(out["lsp"], out["clean"]), mean_l2(inputs["lsp"], inputs["clean"])
    assert left < 0.9 * before, f"{name}: L2 left of the perturbation {left:.3f}, before {before:.3f}"
    kept, other = mean_l2(out["clean"], inputs["clean"]), mean_l2(inputs["clean"], inputs["clean"].roll(1, 0))
    assert kept < 0.5 * other, f"{name}: L2 to the original {kept:.3f}, between two images {other:.3f}"


@pytest.mark.parametrize("name", PURIFIERS)
def test_brings_noised_images_closer_to_clean(name, purified, inputs):
    after, before = mean_l2(purified(name)["noisy"], inputs["clean"]), mean_l2(inputs["noisy"], inputs["clean"])
    assert after < before, f"{name}: L2 to clean {after:.3f} after, {before:.3f} before"


def test_cached_ddpm_is_reused(purified, cifar_small, purify_ctx, monkeypatch):
    purified("diffusion")
    assert len(list((purify_ctx.cache_dir / "ddpm").glob("*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached DDPM should have been loaded")

    monkeypatch.setattr(purify, "train_ddpm", no_training)
    out = countermeasures.get("diffusion")().run_preprocess(cifar_small.images[:8], cifar_small.labels[:8], purify_ctx)
    assert out.shape == (8, 3, 32, 32)


def test_user_checkpoint_is_loaded_offline_and_keys_the_cache(cifar_small, purify_ctx, tmp_path: Path):
    unet = purify._tiny_unet(purify.DDPM_SCALES["smoke"], 32)
    unet.save_pretrained(tmp_path / "ddpm", safe_serialization=True)
    cm = build(countermeasures.get("diffusion"), {"checkpoint": str(tmp_path / "ddpm")})
    images = cifar_small.images[:8]
    a = cm.run_preprocess(images, cifar_small.labels[:8], purify_ctx)
    assert a.dtype == torch.uint8 and torch.equal(a, cm.run_preprocess(images, cifar_small.labels[:8], purify_ctx))
    before = effective_settings(cm, PRESETS["smoke"])["checkpoint"]
    assert before.startswith("sha256:") and str(tmp_path) not in before
    with torch.no_grad():
        unet.conv_out.bias.add_(0.1)
    unet.save_pretrained(tmp_path / "ddpm", safe_serialization=True)
    after = effective_settings(cm, PRESETS["smoke"])["checkpoint"]
    assert after != before, "new weights at the same path must change the cache key"


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="checkpoint '.*nowhere' is not a diffusers UNet2DModel folder"):
        build(countermeasures.get("diffusion"), {"checkpoint": str(tmp_path / "nowhere")})


def test_no_heldout_data_and_no_checkpoint_is_a_clear_error(cifar_small, tmp_path: Path):
    empty = (torch.empty(0, 3, 32, 32, dtype=torch.uint8), torch.empty(0, dtype=torch.long))
    ctx = Context(torch.device("cpu"), seed=0, preset=PRESETS["paper"], num_classes=10, cache_dir=tmp_path,
                  heldout_fn=lambda: empty)
    with pytest.raises(ValueError, match="'paper' preset trains on the whole training split.*diffusion.checkpoint=PATH"):
        countermeasures.get("diffusion")().run_preprocess(cifar_small.images[:4], cifar_small.labels[:4], ctx)


@pytest.mark.parametrize("name, args, message", [
    ("dvae", {"rate": "0"}, "dvae rate must be > 0, got 0.0"),
    ("dvae", {"second_stage": "maybe"}, "expected a boolean, got 'maybe'"),
    ("diffusion", {"t_star": "1000"}, r"t_star must be in 1..999 \(of 1000 DDPM steps\), got 1000"),
    ("diffusion", {"steps": "101"}, r"steps must be in 0..t_star=100 \(0: the preset's\), got 101"),
    ("diffusion", {"eta": "2"}, r"eta must be in \[0, 1\], got 2.0"),
])
def test_bad_parameter_is_named(name, args, message):
    with pytest.raises(ValueError, match=message):
        build(countermeasures.get(name), args)
