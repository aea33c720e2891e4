"""Methods: budgets on the saved uint8 output, OPS's one pixel, LSP's separable L2 noise, determinism."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from benchmark.budget import BudgetError, check_budget
from benchmark.data import load_splits
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import protected_set
from benchmark.metrics import per_image_norms
from benchmark.plugins import Budget, Method
from benchmark.registry import methods
from methods.lsp import l2_budget
from methods.ops import CORNERS


@pytest.fixture
def config(smoke_config) -> GridConfig:
    return smoke_config


def _saved(config: GridConfig, name: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean, protected as read back from the cache file, labels)."""
    _, gen = protected_set(config, config.method(name), seed)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    saved = torch.load(config.cache.paths("protected", gen["key"])[0], weights_only=True)["images"]
    return train.images, saved, train.labels


@pytest.mark.parametrize("name", methods.names())
def test_every_method_holds_its_budget_on_the_saved_output(config, name):
    clean, saved, _ = _saved(config, name)
    assert saved.dtype == torch.uint8 and saved.shape == clean.shape
    method = methods.get(name)()
    check_budget(name, method.budget(tuple(clean.shape[1:])), clean, saved)


def test_ops_sets_one_class_wise_corner_pixel(config):
    clean, saved, labels = _saved(config, "ops")
    norms = per_image_norms(clean, saved)
    assert norms["l0"].max() <= 1 and (norms["l0"] == 1).float().mean() > 0.99
    chosen = set()
    for c in range(10):
        idx = (labels == c).nonzero().flatten()
        changed = (saved[idx] != clean[idx]).any(1).any(0).nonzero()
        assert len(changed) == 1, f"class {c} changes more than one position"
        row, col = changed[0].tolist()
        colours = saved[idx, :, row, col]
        assert (colours == colours[0]).all(), "every image of a class gets the same colour"
        assert any(torch.equal(colours[0], (k * 255).to(torch.uint8)) for k in CORNERS)
        chosen.add((row, col, tuple(colours[0].tolist())))
    assert len(chosen) == 10, "each class has its own (position, colour)"


def test_ops_is_deterministic(cifar_small, ctx):
    ops = methods.get("ops")()
    assert torch.equal(ops(cifar_small.images, cifar_small.labels, ctx), ops(cifar_small.images, cifar_small.labels, ctx))


def test_lsp_noise_is_class_separable_and_within_l2(config):
    clean, saved, labels = _saved(config, "lsp")
    delta = saved.float() - clean.float()
    assert (delta.flatten(1).norm(dim=1) / 255).max() <= l2_budget((3, 32, 32)) + 1e-6
    # Nearest class mean of the perturbations alone recovers the label: the shortcut LSP plants.
    flat = delta.flatten(1)
    means = torch.stack([flat[labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(flat, means).argmin(1)
    assert (predicted == labels).float().mean() > 0.95


def test_lsp_depends_on_seed_only(cifar_small, ctx):
    lsp = methods.get("lsp")()
    a = lsp(cifar_small.images, cifar_small.labels, ctx)
    b = lsp(cifar_small.images, cifar_small.labels, ctx)
    ctx.seed = 1
    c = lsp(cifar_small.images, cifar_small.labels, ctx)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_engine_rejects_a_budget_violation(tmp_path, data_root, temp_plugin):
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu")

    @dataclass
    class Cheater(Method):
        """Claims L∞ 8/255 but adds 12/255."""

        budget = Budget("linf", 8 / 255)

        def generate(self, images, labels, ctx):
            return (images.int() + 12).clamp(0, 255).to(torch.uint8)

    temp_plugin(methods, "cheater", Cheater)
    with pytest.raises(BudgetError, match=r"'cheater' violates its linf budget: measured 12.000/255.*allowed 8.000/255"):
        protected_set(config, config.method("cheater"), 0)
    assert not list((config.cache.root / "protected").glob("*.pt")), "a violating set is never cached"


def test_wrong_output_type_is_named(cifar_small, ctx, temp_plugin):
    @dataclass
    class Floaty(Method):
        """Returns floats."""

        def generate(self, images, labels, ctx):
            return images.float()

    temp_plugin(methods, "floaty", Floaty)
    with pytest.raises(TypeError, match="'floaty' must return uint8"):
        Floaty()(cifar_small.images, cifar_small.labels, ctx)


def test_the_budget_is_the_instance_s_and_every_call_checks_it(cifar_small, ctx):
    @dataclass
    class Shift(Method):
        """Adds `step`/255 within an L∞ budget of `eps`/255."""

        step: int = 12
        eps: float = 8.0

        def budget(self, image_shape=(3, 32, 32)):
            return Budget("linf", self.eps / 255)

        def generate(self, images, labels, ctx):
            return (images.int() + self.step).clamp(0, 255).to(torch.uint8)

    Shift.name = "shift"
    with pytest.raises(BudgetError, match="measured 12.000/255.*allowed 8.000/255"):
        Shift()(cifar_small.images, cifar_small.labels, ctx)  # called directly, not through the engine
    assert Shift(eps=16)(cifar_small.images, cifar_small.labels, ctx).shape == cifar_small.images.shape
    assert str(methods.get("em")(eps=16).budget()) == "L∞ ≤ 16/255"
