"""Countermeasures change what they must and nothing else."""
from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.filters
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import RandomPosterize
from torchvision.transforms.v2.functional import posterize

import countermeasures.training as countermeasure_training
from benchmark.data import ImageSet
from benchmark.engine.cells import Cell
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import run_cell
from benchmark.folding import folded
from benchmark.metrics import perturbation_metrics
from benchmark.models import create_model
from benchmark.plugins import Countermeasure, build
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.seeding import global_rng_from

# The protocol's countermeasures and their families, in its order (docs/countermeasures.md).
PROTOCOL_FAMILIES = {
    "none": "none", "cutout": "augmentation", "cutmix": "augmentation", "mixup": "augmentation",
    "autoaugment": "augmentation", "ueraser": "augmentation", "gaussian_blur": "pre-processing",
    "median_filter": "pre-processing", "mean_filter": "pre-processing", "bit_depth": "pre-processing",
    "grayscale": "pre-processing", "jpeg10": "pre-processing", "jpeg50": "pre-processing",
    "gaussian_noise": "pre-processing", "resize": "pre-processing", "adv_train": "training",
    "ortho_projection": "training", "dvae": "purification", "diffusion": "purification",
}


def _with_stage(stage: str) -> list[str]:
    """Countermeasures with this stage; the purifiers have their own tests (tests/test_purify.py)."""
    return [n for n in countermeasures.names()
            if stage in countermeasures.get(n).stages() and countermeasures.get(n).family != "purification"]


def _made(name: str, ctx, **params):
    cm = countermeasures.get(name)(**params)
    cm.setup(ctx)
    return cm


def _batch(cifar_small, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    return cifar_small.images[:n].float() / 255, cifar_small.labels[:n]


PER_IMAGE = ("channel_norm", "histeq", "lab_whiten", "yuv_whiten")  # colour-domain defences: no random draw


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return perturbation_metrics(a, b)["psnr"]


def _laplacian_energy(images: torch.Tensor) -> float:
    """Mean squared Laplacian: the energy of the highest spatial frequencies."""
    return kornia.filters.laplacian(images.float() / 255, 3).pow(2).mean().item()


def test_registry_follows_the_protocol_table():
    names = countermeasures.names()
    assert [n for n in names if n in PROTOCOL_FAMILIES] == list(PROTOCOL_FAMILIES)
    assert {n: countermeasures.get(n).family for n in PROTOCOL_FAMILIES} == PROTOCOL_FAMILIES


@pytest.mark.parametrize("name", _with_stage("preprocess"))
def test_preprocess_keeps_shape_dtype_and_is_deterministic(name, cifar_small, ctx):
    cm = _made(name, ctx)
    a = cm.run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    b = cm.run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    assert a.dtype == torch.uint8 and a.shape == cifar_small.images.shape and torch.equal(a, b)
    assert not torch.equal(a, cifar_small.images), "a pre-processing countermeasure must change the images"


@pytest.mark.parametrize("name", _with_stage("augment"))
def test_augment_keeps_shape_and_range_and_is_deterministic_under_a_generator(name, cifar_small, ctx):
    cm = _made(name, ctx)
    x, y = _batch(cifar_small)
    (xa, ya), (xb, yb), *others = [cm.augment(x.clone(), y.clone(), torch.Generator().manual_seed(s)) for s in (1, 1, 2, 3, 4)]
    assert xa.shape == x.shape and xa.dtype == x.dtype and 0 <= xa.min() and xa.max() <= 1
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the training loop's crop hands over an NHWC-strided batch; its reductions may sum in another order, which can
    # move a truncated value by one uint8 level
    xl, yl = cm.augment(x.contiguous(memory_format=torch.channels_last), y.clone(), torch.Generator().manual_seed(1))
    assert (xl - xa).abs().max() <= 1 / 255 + 1e-6 and (xl != xa).float().mean() < 0.01 and torch.equal(yl, ya)
    if name in PER_IMAGE:  # a function of the (cropped, flipped) image alone
        assert all(torch.equal(xa, xc) for xc, _ in others) and not torch.equal(xa, x)
    else:
        assert any(not torch.equal(xa, xc) for xc, _ in others), "other generator states must give other augmentations"
    assert ya.shape in (y.shape, (len(y), 10))
    if ya.ndim == 2:
        assert torch.allclose(ya.sum(1), torch.ones(len(y)))


@pytest.mark.parametrize("name", _with_stage("training_step"))
def test_training_step_gives_a_finite_loss_deterministically_and_leaves_the_model_training(name, cifar_small, ctx):
    x, y = _batch(cifar_small, 32)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model("tinycnn", 10).train()
        cm = _made(name, ctx)
        losses.append(cm.training_step(model, x, y, ctx.preset.epochs - 1))
        assert model.training
    assert losses[0].ndim == 0 and torch.isfinite(losses[0]) and losses[0].requires_grad
    assert torch.equal(losses[0], losses[1])


def test_none_uses_no_stage():
    assert countermeasures.get("none").stages() == []


def test_library_draws_follow_the_generator_and_leave_the_global_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    draws = []
    for _ in range(2):
        with global_rng_from(torch.Generator().manual_seed(7)):
            draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[1]) and torch.equal(torch.rand(3), expected)


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
    assert _psnr(cifar_small.images, q10) < 30 < _psnr(cifar_small.images, q90)


def test_jpeg50_lowers_psnr_less_than_jpeg10(cifar_small, ctx):
    q10 = countermeasures.get("jpeg10")().run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    q50 = countermeasures.get("jpeg50")().run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    assert countermeasures.get("jpeg50")().quality == 50
    assert _psnr(cifar_small.images, q10) + 3 < _psnr(cifar_small.images, q50)


def test_bit_depth_keeps_the_top_two_bits_as_torchvisions_posterize(cifar_small, ctx):
    images = cifar_small.images
    cm = _made("bit_depth", ctx)
    assert cm.bits == 2 and cm.version == "2"
    out = cm.run_preprocess(images, cifar_small.labels, ctx)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    # A floor to multiples of 64, never a rounding: the levels are 0, 64, 128, 192 and 255 becomes 192.
    assert torch.equal(out, images // 64 * 64)
    assert set(out.unique().tolist()) == {0, 64, 128, 192}, "real images reach every level"
    assert torch.equal(out >> 6, images >> 6), "the top two bits are kept"
    assert not (out & 63).any(), "the six low bits are cleared"
    assert (images & 63).any() and (out <= images).all() and (images - out).max() == 63
    # ISS and APBench: torchvision's RandomPosterize(bits=2, p=1).
    iss = RandomPosterize(bits=2, p=1)
    for i in range(0, len(images), 29):
        assert torch.equal(out[i], iss(images[i]))


@pytest.mark.parametrize("bits", [1, 5, 8])
def test_bit_depth_bits_sets_how_many_top_bits_stay(bits, cifar_small, ctx):
    images = cifar_small.images
    out = _made("bit_depth", ctx, bits=bits).run_preprocess(images, cifar_small.labels, ctx)
    step = 2 ** (8 - bits)
    assert torch.equal(out, images // step * step)
    assert torch.equal(out, posterize(images, bits))
    assert len(out.unique()) <= 2**bits


def test_median_filter_removes_salt_and_pepper_noise(cifar_small, ctx):
    images = cifar_small.images
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(images.shape, generator=gen)
    noisy = images.clone()
    noisy[u < 0.03] = 0
    noisy[u > 0.97] = 255
    filtered = _made("median_filter", ctx).run_preprocess(noisy, cifar_small.labels, ctx)
    mse_noisy = (noisy.float() - images.float()).pow(2).mean()
    mse_filtered = (filtered.float() - images.float()).pow(2).mean()
    assert mse_filtered < 0.2 * mse_noisy


def test_median_filter_equals_kornias_median_blur(cifar_small, ctx):
    out = _made("median_filter", ctx).run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    reference = kornia.filters.median_blur(cifar_small.images.float(), 3).to(torch.uint8)
    assert torch.equal(out, reference)


@pytest.mark.parametrize("name", ["gaussian_blur", "mean_filter", "resize"])
def test_low_pass_filters_lower_high_frequency_energy(name, cifar_small, ctx):
    out = _made(name, ctx).run_preprocess(cifar_small.images, cifar_small.labels, ctx)
    assert _laplacian_energy(out) < 0.5 * _laplacian_energy(cifar_small.images)
    assert _psnr(cifar_small.images, out) > 20, "a low-pass filter keeps the image recognisable"


def test_apbenchs_blur_sigma_0_1_is_the_identity_on_uint8_images(cifar_small, ctx):
    """The reference's blur column (kernel 3, σ 0.1) weighs each neighbour by e^(−50): no pixel changes, so its
    column is a second `none` (docs/compare.md); at σ 0.5 most pixels do change."""
    weak = build(countermeasures.get("gaussian_blur"), {"sigma": "0.1"}).run_preprocess(
        cifar_small.images, cifar_small.labels, ctx)
    assert torch.equal(weak, cifar_small.images)
    half = build(countermeasures.get("gaussian_blur"), {"sigma": "0.5"}).run_preprocess(
        cifar_small.images, cifar_small.labels, ctx)
    assert (half != cifar_small.images).float().mean() > 0.5


def test_cutout_blanks_one_16x16_square_and_nothing_else(cifar_small, ctx):
    x, y = _batch(cifar_small, 200)
    x = x.clamp(min=1 / 255)  # no true zeros, so every zero in the output is the hole
    out, out_y = _made("cutout", ctx).augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out_y, y)
    hole = out == 0
    assert torch.equal(out[~hole], x[~hole]) and (hole.all(1) == hole.any(1)).all(), "the hole spans all channels"
    full = 0
    for mask in hole[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert 1 <= h <= 16 and 1 <= w <= 16 and mask.sum() == h * w, "one axis-aligned rectangle"
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
        # a hole narrower than 16 is clipped by the border
        assert h == 16 or rows[0] == 0 or rows[-1] == 31
        assert w == 16 or cols[0] == 0 or cols[-1] == 31
        full += h == w == 16
    assert full > 50, "holes centred away from the border are full 16×16 squares"


def test_mixup_blends_each_image_with_its_partner_and_its_label_alike(cifar_small, ctx):
    x, y = _batch(cifar_small, 64)
    out, soft = _made("mixup", ctx, prob=1.0).augment(x, y, torch.Generator().manual_seed(0))
    assert soft.shape == (64, 10) and torch.allclose(soft.sum(1), torch.ones(64))
    partner = x.roll(1, 0)
    differ = y != y.roll(1)
    lam = soft[torch.arange(64), y]
    assert 0 < lam[differ][0] < 1 and torch.allclose(lam[differ], lam[differ][0]), "one λ per batch"
    expected = lam[differ][0] * x + (1 - lam[differ][0]) * partner
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(soft[torch.arange(64), y.roll(1)][differ], 1 - lam[differ])


def test_cutmix_pastes_a_partner_box_and_weights_labels_by_its_area(cifar_small, ctx):
    x, y = _batch(cifar_small, 64)
    cm = _made("cutmix", ctx, prob=1.0)
    for seed in range(5):
        out, soft = cm.augment(x, y, torch.Generator().manual_seed(seed))
        assert torch.allclose(soft.sum(1), torch.ones(64))
        partner = x.roll(1, 0)
        from_partner = (out == partner).all(1) & (out != x).any(1)
        assert ((out == x) | (out == partner)).all(), "every pixel comes from the image or its partner"
        box = from_partner.any(0)  # the same box in every image of the batch
        area = box.float().mean()
        differ = y != y.roll(1)
        assert torch.allclose(soft[torch.arange(64), y][differ], 1 - area, atol=1e-6)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_label_mixing_skipped_batches_keep_images_and_one_hot_labels(name, cifar_small, ctx):
    x, y = _batch(cifar_small, 64)
    out, soft = _made(name, ctx, prob=0.0).augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out, x) and torch.equal(soft, F.one_hot(y, 10).float())


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_label_mixing_mixes_every_batch_by_default(name, cifar_small, ctx):
    # Zhang et al. and Yun et al. mix every batch, and so does APBench (kornia's p = 1 by default).
    x, y = _batch(cifar_small, 64)
    cm = _made(name, ctx)
    assert cm.prob == 1.0 and cm.version == "2"
    for seed in range(20):
        out, soft = cm.augment(x, y, torch.Generator().manual_seed(seed))
        assert not torch.equal(out, x), f"batch {seed} was left unmixed"
        assert (soft.max(1).values < 1).any(), f"batch {seed} kept one-hot labels"


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_label_mixing_prob_mixes_that_share_of_batches(name, cifar_small, ctx):
    x, y = _batch(cifar_small, 16)
    cm = _made(name, ctx, prob=0.5)
    mixed = sum(not torch.equal(cm.augment(x, y, torch.Generator().manual_seed(s))[0], x) for s in range(200))
    assert 70 <= mixed <= 130  # Binomial(200, 0.5): ±4 standard deviations


def test_autoaugment_output_stays_on_the_uint8_grid(cifar_small, ctx):
    x, y = _batch(cifar_small, 64)
    out, _ = _made("autoaugment", ctx).augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out, (out * 255).round() / 255)
    changed = (out != x).flatten(1).any(1).float().mean()
    assert changed > 0.5, "most images are changed by some sub-policy"


def test_gaussian_noise_has_the_stated_std(cifar_small, ctx):
    x, y = _batch(cifar_small, 200)
    x = 0.25 + 0.5 * x  # keep 4σ away from 0 and 1, so clamping never changes the noise
    out, _ = _made("gaussian_noise", ctx).augment(x, y, torch.Generator().manual_seed(0))
    noise = out - x
    assert abs(noise.std().item() * 255 - 8) < 0.1 and abs(noise.mean().item()) < 1e-3


def test_adv_train_pgd_stays_in_the_ball_and_raises_the_loss(cifar_small, ctx):
    x, y = _batch(cifar_small, 32)
    torch.manual_seed(0)
    model = create_model("tinycnn", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):  # a little training, so the loss surface is not flat
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None  # running statistics = this batch's, so eval mode matches what was trained
    with torch.no_grad():
        model(x)
    adv = _made("adv_train", ctx).perturb(model.train(), x, y, torch.Generator().manual_seed(0))
    assert model.training, "the victim is back in train mode for the update step"
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 7 / 255
    noise = (x + torch.empty_like(x).uniform_(-8 / 255, 8 / 255)).clamp(0, 1)
    with torch.no_grad():
        clean, random, pgd = (F.cross_entropy(model.eval()(v), y).item() for v in (x, noise, adv))
    assert pgd > 1.2 * clean and pgd > random + 0.2, (clean, random, pgd)


def test_adv_train_attacks_the_last_adv_epochs_and_reports_them(cifar_small, ctx, monkeypatch):
    assert _made("adv_train", ctx).settings(ctx.preset)["adv_epochs"] == ctx.preset.epochs == 4
    assert _made("adv_train", ctx, adv_epochs=99).settings(ctx.preset)["adv_epochs"] == 4
    cm = _made("adv_train", ctx, adv_epochs=1)
    assert cm.settings(ctx.preset)["adv_epochs"] == 1
    x, y = _batch(cifar_small, 16)
    model = create_model("tinycnn", 10)
    calls, attacked = [], []
    model.register_forward_hook(lambda m, inputs, out: calls.append("update"))

    def folded_and_counted(victim: torch.nn.Module) -> torch.nn.Module:
        attacked.append(victim)
        copy = folded(victim)
        copy.register_forward_hook(lambda m, inputs, out: calls.append("pgd"))
        return copy

    monkeypatch.setattr(countermeasure_training, "folded", folded_and_counted)
    cm.training_step(model, x, y, epoch=2)
    cm.training_step(model, x, y, epoch=3)
    assert calls == ["update"] + ["pgd"] * 10 + ["update"], "a standard step, then 10 PGD steps and the update"
    assert attacked == [model], "the attack runs on a folded copy of the victim being trained"


def _forward_sizes(model: torch.nn.Module) -> list[int]:
    seen: list[int] = []
    model.register_forward_hook(lambda m, inputs, out: seen.append(len(inputs[0])))
    return seen


def test_ueraser_is_ueraser_max_at_paper_and_the_repository_schedule_on_the_cpu(cifar_small, ctx):
    cm = _made("ueraser", ctx)
    assert cm.version == "3" and (cm.repeats, cm.jpeg) == (5, False)
    quick = cm.settings(PRESETS["quick"])
    assert (quick["repeat_fraction"], quick["plasma_prob"], quick["repeat_epochs"]) == (0.3, 0.5, 3)
    paper = cm.settings(PRESETS["paper"])
    assert (paper["repeat_fraction"], paper["plasma_prob"], paper["repeat_epochs"]) == (1.0, 1.0, PRESETS["paper"].epochs)
    with pytest.raises(ValueError, match="repeat_fraction"):
        _made("ueraser", ctx, repeat_fraction=1.5)


def test_ueraser_max_repeats_in_every_epoch(cifar_small, ctx):
    x, y = _batch(cifar_small, 16)
    cm = _made("ueraser", ctx, repeat_fraction=1.0, plasma_prob=1.0)
    assert cm.settings(ctx.preset)["repeat_epochs"] == ctx.preset.epochs == 4
    model = create_model("tinycnn", 10)
    seen = _forward_sizes(model)
    for epoch in range(ctx.preset.epochs):
        cm.training_step(model, x, y, epoch)
    assert seen == [16] * 5 * 4, "each copy is its own forward pass, as in the official training loops"


def test_ueraser_repeat_fraction_repeats_in_the_early_epochs_only(cifar_small, ctx):
    x, y = _batch(cifar_small, 16)
    cm = _made("ueraser", ctx, repeat_fraction=0.3)
    assert cm.settings(ctx.preset)["repeat_epochs"] == round(0.3 * ctx.preset.epochs) == 1
    model = create_model("tinycnn", 10)
    seen = _forward_sizes(model)
    cm.training_step(model, x, y, epoch=0)
    cm.training_step(model, x, y, epoch=1)
    assert seen == [16] * 5 + [16]
    assert _made("ueraser", ctx, repeat_fraction=0.0).settings(ctx.preset)["repeat_epochs"] == 0  # UEraser-Lite


def test_ueraser_loss_is_the_mean_over_images_of_the_largest_copy_loss(cifar_small, ctx):
    x, y = _batch(cifar_small, 8)
    torch.manual_seed(0)
    model = create_model("tinycnn", 10).eval()
    cm = _made("ueraser", ctx)
    loss = cm.training_step(model, x, y, epoch=0)
    cm.setup(ctx)  # the same generator state again: the same five copies
    with torch.no_grad():
        per_copy = torch.stack([F.cross_entropy(model(cm.transform(x, cm._gen)), y, reduction="none") for _ in range(5)])
    assert torch.allclose(loss, per_copy.max(0).values.mean(), atol=1e-5)
    assert loss > per_copy.mean() + 1e-3


def test_ueraser_copies_are_separate_augmentation_calls_each_with_its_own_trivialaugment_operation(cifar_small, ctx):
    x, y = _batch(cifar_small, 16)
    cm = _made("ueraser", ctx, plasma_prob=0.0)
    chosen: list[tuple[int, str]] = []
    trivial = cm._kornia[-1]
    pick = trivial.get_forward_sequence

    def record(params=None):
        sequence = list(pick(params))
        chosen.append((len(sequence), sequence[0][0]))
        return iter(sequence)

    trivial.get_forward_sequence = record
    for _ in range(4):  # 4 repeat steps of 5 copies
        cm.training_step(create_model("tinycnn", 10), x, y, epoch=0)
    assert len(chosen) == 20, "one augmentation call per copy"
    assert len({name for _, name in chosen}) > 3, "TrivialAugment picks an operation per copy, not one for all copies"


@pytest.mark.parametrize("prob, expected", [(1.0, "all"), (0.0, "none"), (0.5, "some")])
def test_ueraser_plasma_prob_is_the_share_of_images_given_each_plasma(prob, expected, cifar_small, ctx):
    x, _ = _batch(cifar_small, 64)
    cm = _made("ueraser", ctx, plasma_prob=prob)
    sizes: list[int] = []
    maps = cm._plasma_maps
    cm._plasma_maps = lambda images, gen: sizes.append(len(images)) or maps(images, gen)
    cm.transform(x, torch.Generator().manual_seed(0))
    if expected == "all":
        assert sizes == [64, 64], "plasma brightness and plasma contrast on every image"
    elif expected == "none":
        assert sizes == []
    else:
        assert len(sizes) == 2 and all(16 <= n <= 48 for n in sizes)


@pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")  # torchvision 0.29
def test_ueraser_jpeg_codes_each_copy_at_its_own_quality_in_10_to_99(cifar_small, ctx):
    x, _ = _batch(cifar_small, 8)
    qualities: list[int] = []
    for jpeg in (False, True):
        cm = _made("ueraser", ctx, jpeg=jpeg, plasma_prob=0.0)
        cm._kornia = torch.nn.Identity()  # leave only the JPEG stage
        gen = torch.Generator().manual_seed(3)
        out = [cm.transform(x, gen) for _ in range(5)]  # the five copies of one repeat step
        if not jpeg:
            assert all(torch.equal(part, x) for part in out), "no JPEG by default"
            continue
        uint8 = (x * 255).round().to(torch.uint8)
        for part in out:
            match = [q for q in range(10, 100) if torch.equal(part, TF.jpeg(uint8, q).float() / 255)]
            assert match, "each copy is the real JPEG codec's output at a quality in [10, 100)"
            qualities.append(match[0])
    assert len(set(qualities)) > 1, "the copies are coded at different qualities"


def test_ueraser_transform_keeps_range_and_follows_the_generator(cifar_small, ctx):
    x, _ = _batch(cifar_small, 32)
    cm = _made("ueraser", ctx)
    a = cm.transform(x, torch.Generator().manual_seed(0))
    b = cm.transform(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert (a - x).abs().mean() > 0.02


def test_plasma_fractals_match_kornias_diamond_square_statistics():
    from kornia.contrib import diamond_square

    from countermeasures.augment import plasma

    roughness = torch.full((1000,), 0.5)
    ours = plasma(1000, 32, 32, roughness, torch.Generator().manual_seed(0))
    assert torch.equal(ours, plasma(1000, 32, 32, roughness, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    reference = diamond_square((1000, 1, 32, 32), roughness).squeeze(1)
    assert ours.shape == reference.shape and 0 <= ours.min() and ours.max() <= 1

    def stats(maps: torch.Tensor) -> torch.Tensor:
        """Overall std, mean within-map std, mean absolute horizontal step, std at a corner."""
        steps = (maps[:, :, 1:] - maps[:, :, :-1]).abs().mean()
        return torch.stack([maps.std(), maps.flatten(1).std(1).mean(), steps, maps[:, 0, 0].std()])

    assert abs(ours.mean() - 0.5) < 0.01
    assert torch.allclose(stats(ours), stats(reference), rtol=0.05)


def test_ortho_projection_leaves_no_component_along_the_class_directions(cifar_small, ctx):
    cm = _made("ortho_projection", ctx)
    basis = cm.directions(cifar_small.images, cifar_small.labels, ctx)
    assert basis.shape == (3 * 32 * 32, 10) and torch.allclose(basis.T @ basis, torch.eye(10), atol=1e-4)
    out = cm.run_preprocess(cifar_small.images, cifar_small.labels, ctx)

    def spread(images: torch.Tensor) -> torch.Tensor:
        """Per-direction std over the images of their coordinates along the class directions."""
        return ((images.flatten(1).float() / 255) @ basis).std(0)

    # What is left is uint8 rounding and clamping: under 10% of what was there (2-7% over seeds 0-4).
    assert (spread(out) < 0.1 * spread(cifar_small.images)).all()


def test_ortho_projection_removes_a_class_wise_shortcut(cifar_small, ctx):
    images, labels = cifar_small.images, cifar_small.labels
    patterns = torch.randint(-12, 13, (10, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    poisoned = (images.int() + patterns[labels]).clamp(0, 255).to(torch.uint8)
    out = _made("ortho_projection", ctx).run_preprocess(poisoned, labels, ctx)
    # The class patterns point along the fitted directions, so their energy in the output falls a lot.
    flat = patterns.flatten(1).float()
    unit = flat / flat.norm(dim=1, keepdim=True)
    before = ((poisoned.flatten(1).float() - images.flatten(1).float()) * unit[labels]).sum(1).mean()
    after = ((out.flatten(1).float() - images.flatten(1).float()) * unit[labels]).sum(1).mean()
    assert after < 0.3 * before


@pytest.mark.parametrize("name, param, value, message", [
    ("jpeg10", "quality", "0", "quality must be in 1..100, got 0"),
    ("bit_depth", "bits", "9", "bits must be in 1..8 bits per channel, got 9"),
    ("gaussian_blur", "kernel", "4", "kernel must be an odd number of pixels >= 1, got 4"),
    ("mixup", "prob", "1.5", r"prob must be in \[0, 1\] \(a probability\), got 1.5"),
    ("ueraser", "repeats", "0", "repeats must be >= 1"),
    ("ueraser", "plasma_prob", "1.5", r"plasma_prob must be in \[0, 1\] \(a probability or -1\), got 1.5"),
    ("bit_depth", "bits", "0", "bits must be in 1..8 bits per channel, got 0"),
    ("adv_train", "eps", "0", r"eps must be in \(0, 255\]"),
    ("resize", "scale", "2", r"scale must be in \(0, 1\)"),
])
def test_bad_parameter_value_is_named_with_the_valid_range(name, param, value, message):
    with pytest.raises(ValueError, match=message):
        build(countermeasures.get(name), {param: value})


def test_bad_parameter_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="no parameter 'qual'; valid parameters: quality"):
        build(countermeasures.get("jpeg10"), {"qual": "5"})


def test_run_cell_sets_the_countermeasure_up_and_records_its_effective_settings(tmp_path, data_root, temp_plugin):
    @dataclass
    class Probe(Countermeasure):
        """Derives a setting from the preset, as ueraser and adv_train do."""

        def setup(self, ctx):
            self._epochs_seen = self.settings(ctx.preset)["epochs_seen"]

        def settings(self, preset):
            return {"epochs_seen": preset.epochs}

        def augment(self, x, y, gen):
            assert self._epochs_seen == 4, "setup ran before training"
            return x, y

    temp_plugin(countermeasures, "zz-probe", Probe)
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu")
    row = run_cell(Cell("ops", "zz-probe", 0).resolve(config), config)
    assert row["status"] == "ok" and row["identity"]["countermeasure"]["settings"] == {"epochs_seen": 4}


def _dot(b: int, at: tuple[int, int]) -> torch.Tensor:
    x = torch.zeros(b, 3, 32, 32)
    x[:, :, at[0], at[1]] = 1.0
    return x


@pytest.mark.parametrize("alpha", [0.5, 2.0, 3.2])
def test_coin_moves_each_pixel_by_at_most_alpha_and_wraps_around(alpha):
    coin = countermeasures.get("coin")(alpha=alpha)
    out, _ = coin.augment(_dot(64, (16, 16)), torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(0))
    rows, cols = out.sum(1).nonzero()[:, 1:].T
    reach = math.ceil(alpha)  # a pixel whose sample falls within one pixel of the dot sees it, bilinearly
    assert (rows - 16).abs().max() <= reach and (cols - 16).abs().max() <= reach
    assert (rows - 16).abs().max() == reach and (cols - 16).abs().max() == reach  # and some do reach that far
    corner, _ = coin.augment(_dot(64, (0, 0)), torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(0))
    seen = corner.sum((0, 1)).nonzero()
    assert bool(((seen[:, 0] >= 32 - reach) | (seen[:, 1] >= 32 - reach)).any())  # left of column 0 is column 31


def test_coin_shares_each_offset_across_channels_and_keeps_the_uint8_grid(cifar_small):
    x = (cifar_small.images[:16, :1].expand(-1, 3, -1, -1).float() / 255).contiguous()
    out, y = countermeasures.get("coin")().augment(x, cifar_small.labels[:16], torch.Generator().manual_seed(1))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.equal(out * 255, (out * 255).round()) and not torch.equal(out, x)
    assert torch.equal(y, cifar_small.labels[:16])
    same, _ = countermeasures.get("coin")(alpha=0).augment(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(same, x)  # no displacement: the identity


def _low_contrast(cifar_small: ImageSet, n: int = 16) -> torch.Tensor:
    """Real images squeezed into levels 96..160 and tinted per channel: little contrast, a colour cast."""
    x = cifar_small.images[:n].float() / 255
    return ((96 + 64 * x) / 255 + torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)).clamp(0, 1)


def test_histeq_maps_each_level_to_its_share_of_the_pixels_below_it(cifar_small):
    x = _low_contrast(cifar_small)
    out, _ = countermeasures.get("histeq")().augment(x, torch.zeros(len(x)), torch.Generator())
    assert torch.equal(out * 255, (out * 255).round())
    for before, after in zip((x * 255).round().flatten(0, 1).flatten(1), out.flatten(0, 1).flatten(1)):
        first = (before == before.min()).float().mean()
        share = ((before[None, :] <= before[:, None]).float().mean(1) - first) / (1 - first)  # OpenCV's mapping
        assert (after - share).abs().max() <= 0.5 / 255 + 1e-6
        assert after.min() == 0 and after.max() == 1 and abs(float((after <= 0.5).float().mean()) - 0.5) < 0.1


def test_channel_norm_undoes_a_per_image_colour_cast_and_gain(cifar_small):
    x = cifar_small.images[:8].float() / 255 * 0.6 + 0.2
    cast = x * torch.tensor([0.7, 1.1, 0.9]).view(1, 3, 1, 1) + torch.tensor([0.05, -0.1, 0.02]).view(1, 3, 1, 1)
    cm = countermeasures.get("channel_norm")()
    (a, _), (b, _) = (cm.augment(v, torch.zeros(8), torch.Generator()) for v in (x, cast))
    assert (a - b).abs().max() <= 1 / 255 + 1e-6 and a.amin() == 0 and a.amax() == 1


@pytest.mark.parametrize("name", ["lab_whiten", "yuv_whiten"])
def test_whitening_stretches_each_colour_channel(name, cifar_small):
    from countermeasures.colour import lab_8bit, yuv_8bit

    encode = lab_8bit if name == "lab_whiten" else yuv_8bit
    x = _low_contrast(cifar_small, 8)
    cm = countermeasures.get(name)()
    out, _ = cm.augment(x, torch.zeros(8), torch.Generator())
    spread_before, spread_after = (encode(v).flatten(2).std(2) for v in (x, out))
    assert (spread_after > 1.5 * spread_before).float().mean() > 0.9  # each colour channel stretched
    assert torch.equal(out * 255, (out * 255).round())
