"""Clean surrogate models: the preset's recipe on the clean training subset, trained once and cached."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..data import load_splits
from ..models import create_model
from ..registry import models
from ..store.cache import spec_key
from ..store.keys import surrogate_key
from ..training import train_victim

if TYPE_CHECKING:
    from .config import GridConfig

SURROGATE_SEED = 0  # fixed, so a whole grid (any seeds) trains one surrogate per (dataset, preset, arch)
_memo: dict[tuple[str, str], torch.nn.Module] = {}


def surrogate_spec(config: GridConfig, arch: str) -> dict[str, Any]:
    """The cache key of the surrogate `arch` in this grid."""
    return surrogate_key(config.parts, models.get(arch), SURROGATE_SEED)


def surrogate_model(config: GridConfig, arch: str, progress: Callable[..., Any] = lambda it=None, **kw: it) -> torch.nn.Module:
    """`arch` trained on the clean training subset with the preset's recipe: from memory, else from the cache
    (SHA-256 checked, weights_only), else trained and cached. Frozen, eval mode, on the config's device."""
    spec = surrogate_spec(config, arch)
    memo = (str(config.cache.root), spec_key(spec))
    if memo in _memo:
        return _memo[memo]
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    device = config.torch_device

    def create() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        recipe = dataclasses.replace(config.preset_obj, model=arch)
        result = train_victim(
            train.images, train.labels, test.images, test.labels, train.num_classes,
            recipe, config.countermeasure("none"), SURROGATE_SEED, device, progress,
        )
        state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        return state, {"test_acc": result.final_acc, "train_acc": result.train_acc, "train_s": result.seconds}

    state, _, _ = config.cache.get_or_create("surrogate", spec, create)
    model = create_model(arch, train.num_classes)
    model.load_state_dict(state)
    model = model.to(device).eval().requires_grad_(False)
    _memo[memo] = model
    return model


def forget(cache_root: str) -> None:
    """Drop the surrogates held in memory for the cache folder `cache_root` (a temporary cache that goes away)."""
    for key in [k for k in _memo if k[0] == cache_root]:
        del _memo[key]
