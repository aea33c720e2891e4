"""The one recipe of a cell: its protected set (cached), the countermeasure's stages, the victim's training, its row."""
from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from ..budget import BudgetError
from ..data import ImageSet, full_split, heldout_split, load_splits, poison_mask, split_positions
from ..identity import device_name, digest, git_state, library_versions, machine, plugin_code, plugin_label
from ..metrics import perturbation_metrics
from ..plugins import Context, Countermeasure, Method
from ..presets import Preset, preset_label
from ..progress import quiet
from ..registry import models
from ..store.cache import spec_key
from ..store.keys import POISON_SELECTION_SEED, preprocessed_key, protected_key
from ..store.row import Row
from ..training import Regime, TrainResult, train_victim
from .cells import ResolvedCell
from .config import GridConfig
from .surrogates import surrogate_model


def make_context(config: GridConfig, seed: int, num_classes: int, progress: Callable[..., Any]) -> Context:
    return Context(
        config.torch_device, seed, config.preset_obj, num_classes, config.cache.root, progress,
        surrogate_fn=lambda arch: surrogate_model(config, arch, progress),
        heldout_fn=lambda: _as_pair(heldout_split(config.dataset, config.data_root, config.preset)),
        split_fn=lambda: (
            *_as_pair(full_split(config.dataset, True, config.data_root)),
            split_positions(config.dataset, config.data_root, config.preset),
        ),
    )


def _as_pair(data: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    return data.images, data.labels


def protected_spec(config: GridConfig, method: Method, seed: int) -> dict[str, Any]:
    """The cache key of a method's protected set in this grid."""
    return protected_key(config.parts, method, seed)


def protected_set(
    config: GridConfig, method: Method, seed: int, progress: Callable[..., Any] = quiet
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The method's protected training set (from the cache when valid) and its generation record; a cached set
    that breaks the method's budget, or that a surrogate made whose code has changed since, is regenerated."""
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    spec = protected_spec(config, method, seed)
    hit = config.cache.load("protected", spec)
    if hit is not None:
        try:
            images, meta = method.check(train.images, hit[0]["images"]), hit[1]
            stale = {a: c for a, c in meta.get("surrogates", {}).items() if c != plugin_code(models.get(a))}
            if stale:  # the surrogates are not in the key, which published sets keep; their code is checked here
                raise ValueError(f"made with surrogate code that has changed since: {stale}")
            return images, {**meta, "cached": True, "budget": str(method.budget(tuple(train.images.shape[1:]))),
                            "key": spec_key(spec)}
        except (BudgetError, TypeError, KeyError, ValueError) as exc:
            warnings.warn(f"cached protected set of {method.name!r} (seed {seed}) is unusable ({exc}); regenerating")
    ctx = make_context(config, seed, train.num_classes, progress)
    used: dict[str, dict[str, Any]] = {}
    fit = ctx.surrogate_fn

    def surrogate(arch: str) -> torch.nn.Module:
        used[arch] = plugin_code(models.get(arch))
        return fit(arch)

    ctx.surrogate_fn = surrogate
    start = time.perf_counter()
    images = method(train.images, train.labels, ctx)  # checks shape, dtype and budget
    meta = save_protected_set(config, method, seed, images, time.perf_counter() - start, ctx.notes, used)
    return images, {**meta, "cached": False, "budget": str(method.budget(tuple(train.images.shape[1:]))),
                    "key": spec_key(spec)}


def save_protected_set(config: GridConfig, method: Method, seed: int, images: torch.Tensor, seconds: float,
                       notes: dict[str, Any], surrogates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cache a freshly made protected set under its key with its generation record, which it returns."""
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    meta = {"generate_s": seconds, "perturbation": perturbation_metrics(train.images, images), "notes": notes,
            "surrogates": surrogates}
    config.cache.save("protected", protected_spec(config, method, seed), {"images": images}, meta)
    return meta


def save_gallery(run_dir: Path, config: GridConfig, method: Method, seed: int, set_key: str) -> None:
    """Write RUN/gallery/LABEL-seedS.png of a cached protected set unless it already shows this set (same cache
    key; then the set is not read); a failure only warns."""
    from ..report.gallery import GALLERY_DIR, gallery_key, gallery_name, write_gallery  # PIL, pandas: the driver's only

    try:
        path = run_dir / GALLERY_DIR / gallery_name(plugin_label(method), seed)
        if gallery_key(path) == set_key:
            return
        hit = config.cache.load("protected", protected_spec(config, method, seed))
        if hit is not None:
            train, _ = load_splits(config.dataset, config.data_root, config.preset)
            write_gallery(path, train.images, hit[0]["images"], train.labels, train.classes, set_key=set_key)
    except Exception as exc:  # a picture is never worth a cell
        warnings.warn(f"gallery of {method.name!r} (seed {seed}) not written: {type(exc).__name__}: {exc}")


def _cell_fields(resolved: ResolvedCell, config: GridConfig) -> dict[str, Any]:
    """A row's identity and provenance fields."""
    p = config.preset_obj
    cell, method, cm, identity = resolved.cell, resolved.method, resolved.countermeasure, resolved.identity
    commit, dirty = git_state()
    device = config.torch_device
    return {
        "cell_id": resolved.cell_id,
        "config_id": digest({k: v for k, v in identity.items() if k != "seed"}),
        "dataset": config.dataset, "preset": preset_label(p), "preset_id": digest(identity["preset"]),
        "model": resolved.victim,
        "seed": cell.seed, "poison_ratio": cell.poison_ratio, "identity": identity,
        "method": method.name, "method_id": digest(identity["method"]), "method_label": plugin_label(method),
        "method_params": method.params(),
        "countermeasure": cell.countermeasure, "countermeasure_id": digest(identity["countermeasure"]),
        "countermeasure_label": plugin_label(cm), "countermeasure_params": cm.params(),
        "device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
        "machine": machine(),
        "git_commit": commit, "git_dirty": dirty, "versions": {**library_versions(), "plugins": plugins_of(resolved)},
    }


def plugins_of(resolved: ResolvedCell) -> dict[str, dict[str, str]]:
    """The version (and distribution, for an entry-point plugin) of each plugin that made the cell, per kind: what
    else is installed does not make its number."""

    def describe(obj: Any) -> dict[str, str]:
        code = plugin_code(obj)
        dist = code["distribution"]
        return {code["name"]: code["version"] + (f" ({dist['name']} {dist['version']})" if dist else "")}

    return {"method": describe(resolved.method), "countermeasure": describe(resolved.countermeasure),
            "model": describe(models.get(resolved.victim))}


@dataclass
class StagedCell:
    """A cell made ready for its victim: the images it trains on and everything that made them."""

    cell: ResolvedCell
    train: ImageSet
    test: ImageSet
    generated: torch.Tensor  # the method's whole protected set
    generation: dict[str, Any]  # its record: generate_s, perturbation, notes, cached, budget, key
    images: torch.Tensor  # what the victim trains on: the set at the cell's poison ratio, pre-processed
    poisoned: int
    countermeasure: Countermeasure
    context: Context
    preprocess_s: float


def stage_cell(resolved: ResolvedCell, config: GridConfig, progress: Callable[..., Any] = quiet,
               cache_preprocess: bool = True) -> StagedCell:
    """Everything of a cell before its victim's training: the protected set (cached), mixed with clean images at the
    cell's poison ratio, the countermeasure set up and its pre-processing applied (cached when it says so, unless
    `cache_preprocess` is off, e.g. to time it)."""
    cell = resolved.cell
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    generated, gen = protected_set(config, resolved.method, cell.seed, progress)
    images, poisoned = generated, len(generated)
    if cell.poison_ratio != 1.0:  # generated once for the whole set; the ratio only selects its images
        mask = poison_mask(train.labels, train.num_classes, cell.poison_ratio, POISON_SELECTION_SEED)
        images, poisoned = torch.where(mask[:, None, None, None], generated, train.images), int(mask.sum())
    cm = resolved.fresh_countermeasure()
    ctx = make_context(config, cell.seed, train.num_classes, progress)
    cm.setup(ctx)
    start = time.perf_counter()
    if cm.cache_preprocess and cache_preprocess:
        spec = preprocessed_key(gen["key"], cm, config.preset_obj, cell.seed, cell.poison_ratio)
        mixed = images
        tensors, _, _ = config.cache.get_or_create(
            "preprocessed", spec, lambda: ({"images": cm.run_preprocess(mixed, train.labels, ctx)}, {})
        )
        images = tensors["images"]
    else:
        images = cm.run_preprocess(images, train.labels, ctx)
    return StagedCell(resolved, train, test, generated, gen, images, poisoned, cm, ctx, time.perf_counter() - start)


def train_cell(staged: StagedCell, config: GridConfig, progress: Callable[..., Any] = quiet, *,
               schedule: Preset | None = None, victim_seed: int | None = None, regime: Regime | None = None,
               on_eval: Callable[[int, torch.nn.Module], None] | None = None) -> TrainResult:
    """The staged cell's victim trained and evaluated: the preset's recipe and the cell's seed unless a tool gives
    its own `schedule` (epochs, evaluations), `victim_seed`, training `regime` (the countermeasure, wrapped) or
    `on_eval` hook."""
    seed = staged.cell.cell.seed if victim_seed is None else victim_seed
    return train_victim(
        staged.images, staged.train.labels, staged.test.images, staged.test.labels, staged.train.num_classes,
        schedule or config.preset_obj, regime or staged.countermeasure, seed, staged.context.device, progress,
        victim=staged.cell.victim, on_eval=on_eval,
    )


def run_cell(
    cell: ResolvedCell, config: GridConfig, progress: Callable[..., Any] = quiet, fresh: frozenset = frozenset()
) -> dict[str, Any]:
    """Train and evaluate one cell; returns its result row (raises on failure). `fresh` holds the
    (method, seed) sets this run generated, which are not 'cached' for its cells."""
    started = _now()
    t0 = time.perf_counter()
    staged = stage_cell(cell, config, progress)
    t2 = time.perf_counter()
    result = train_cell(staged, config, progress)
    t3 = time.perf_counter()
    gen, cm = staged.generation, staged.countermeasure
    return Row(
        **_cell_fields(cell, config),
        status="ok",
        final_acc=result.final_acc,
        peak_acc=result.peak_acc,
        train_acc=result.train_acc,
        history=[list(h) for h in result.history],
        images_per_second=result.images_per_second,
        cuda_graph=result.cuda_graph,
        perturbation=gen["perturbation"],
        budget=gen["budget"],
        method_notes=gen.get("notes", {}),
        generation_cached=gen["cached"] and cell.set_key not in fresh,
        countermeasure_family=cm.family,
        countermeasure_stages=cm.stages(),
        poisoned=staged.poisoned,
        train_size=len(staged.train),
        test_size=len(staged.test),
        seconds={"generate": gen["generate_s"], "preprocess": staged.preprocess_s, "train": t3 - t2, "total": t3 - t0},
        started=started,
        finished=_now(),
    ).as_dict()


def failed_row(cell: ResolvedCell, config: GridConfig, exc: BaseException) -> dict[str, Any]:
    """The row of a cell that raised: its identity, parameters and provenance, status `failed` and the error."""
    return Row(
        **_cell_fields(cell, config),
        status="failed",
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(exc)),
        finished=_now(),
    ).as_dict()


def run_task(task: tuple[ResolvedCell, GridConfig, frozenset], progress: Callable[..., Any] = quiet) -> dict[str, Any]:
    """One cell: its row, ok or failed."""
    cell, config, fresh = task
    try:
        return run_cell(cell, config, progress, fresh)
    except Exception as exc:  # a failing cell becomes a row; the grid goes on
        return failed_row(cell, config, exc)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
