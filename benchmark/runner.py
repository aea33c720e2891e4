"""The grid: generate protected sets once, run every (method, countermeasure, seed) cell, store rows."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import subprocess
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import __version__
from .cache import ArtifactCache, spec_key
from .data import ImageSet, balanced_indices, balanced_subset, load_dataset, user_cache_dir
from .metrics import check_budget, perturbation_metrics
from .plugins import Context, Countermeasure, Method, build
from .presets import Preset, get_preset
from .registry import countermeasures, methods
from .store import SCHEMA_VERSION, append_row, finished_ids
from .models import create_model
from .training import train_victim

ENV_CACHE_DIR = "UEBENCH_CACHE_DIR"
SURROGATE_SEED = 0  # fixed, so a whole grid (any seeds) trains one surrogate per (dataset, preset, arch)
_surrogates: dict[tuple[str, str], torch.nn.Module] = {}


def _quiet(it: Any = None, **kw: Any) -> Any:
    """A progress-bar factory that shows nothing."""
    return it


@dataclass(frozen=True)
class GridConfig:
    """What every cell of one run shares."""

    dataset: str = "cifar10"
    preset: str = "smoke"
    data_root: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    method_args: dict[str, dict[str, str]] = field(default_factory=dict)
    defense_args: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        for name in self.method_args:
            self.method(name)  # bad parameter names or values fail here, before any work
        for name in self.defense_args:
            self.countermeasure(name)

    @property
    def preset_obj(self) -> Preset:
        return get_preset(self.preset)

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; valid devices: auto, cpu, cuda, cuda:N")
        return torch.device(self.device)

    @property
    def cache(self) -> ArtifactCache:
        root = self.cache_dir or os.environ.get(ENV_CACHE_DIR) or user_cache_dir() / "artifacts"
        return ArtifactCache(root)

    def method(self, name: str) -> Method:
        return build(methods.get(name), self.method_args.get(name, {}))  # type: ignore[return-value]

    def countermeasure(self, name: str) -> Countermeasure:
        return build(countermeasures.get(name), self.defense_args.get(name, {}))  # type: ignore[return-value]


@dataclass(frozen=True)
class Cell:
    method: str
    countermeasure: str
    seed: int

    def cell_id(self, config: GridConfig) -> str:
        params = spec_key({"m": config.method(self.method).params(), "c": config.countermeasure(self.countermeasure).params()})
        p = config.preset_obj
        return f"{config.dataset}/{p.name}/{p.model}/{self.method}/{self.countermeasure}/seed{self.seed}/{params[:8]}"


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, data_root: str | None, preset: str) -> tuple[ImageSet, ImageSet]:
    """The preset's class-balanced train and test subsets (memoised per process)."""
    p = get_preset(preset)
    train = balanced_subset(load_dataset(dataset, True, data_root), p.train_per_class, p.subset_seed)
    test = balanced_subset(load_dataset(dataset, False, data_root), p.test_per_class, p.subset_seed)
    return train, test


@functools.lru_cache(maxsize=4)
def data_fingerprint(dataset: str, data_root: str | None, preset: str) -> str:
    """SHA-256 of the preset's training images and labels, so a cache never mixes up data roots."""
    train, _ = load_splits(dataset, data_root, preset)
    h = hashlib.sha256(train.images.numpy().tobytes())
    h.update(train.labels.numpy().tobytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def heldout_split(dataset: str, data_root: str | None, preset: str) -> ImageSet:
    """The dataset's training images outside the preset's training subset (empty for full-set presets)."""
    p = get_preset(preset)
    full = load_dataset(dataset, True, data_root)
    keep = torch.zeros(len(full), dtype=torch.bool)
    if p.train_per_class is None:
        keep[:] = True
    else:
        keep[balanced_indices(full.labels, full.num_classes, p.train_per_class, p.subset_seed)] = True
    return ImageSet(full.images[~keep].contiguous(), full.labels[~keep].contiguous(), full.classes)


def surrogate_model(config: GridConfig, arch: str, progress: Callable[..., Any] = _quiet) -> torch.nn.Module:
    """`arch` trained on the clean training subset with the preset's recipe: from memory, else from
    the cache (SHA-256 checked, weights_only), else trained and cached. Frozen, eval mode."""
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    p = config.preset_obj
    spec = {
        "dataset": config.dataset, "data": data_fingerprint(config.dataset, config.data_root, config.preset),
        "preset": p.as_dict(), "arch": arch, "seed": SURROGATE_SEED, "version": __version__,
    }
    memo = (str(config.cache.root), spec_key(spec))
    if memo in _surrogates:
        return _surrogates[memo]
    device = config.torch_device

    def create() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        recipe = dataclasses.replace(p, model=arch)
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
    _surrogates[memo] = model
    return model


def make_context(config: GridConfig, seed: int, num_classes: int, progress: Callable[..., Any]) -> Context:
    return Context(
        config.torch_device, seed, config.preset_obj, num_classes, config.cache.root, progress,
        surrogate_fn=lambda arch: surrogate_model(config, arch, progress),
        heldout_fn=lambda: _as_pair(heldout_split(config.dataset, config.data_root, config.preset)),
    )


def _as_pair(data: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    return data.images, data.labels


def protected_set(
    config: GridConfig, method_name: str, seed: int, progress: Callable[..., Any] = _quiet
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The method's protected training set (from cache when valid) and its generation record."""
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    method = config.method(method_name)
    p = config.preset_obj
    spec = {
        "dataset": config.dataset, "data": data_fingerprint(config.dataset, config.data_root, config.preset),
        "preset": p.name, "method": method_name, "params": method.params(), "seed": seed, "version": __version__,
    }
    budget = method.budget_for(tuple(train.images.shape[1:]))

    def create() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        ctx = make_context(config, seed, train.num_classes, progress)
        start = time.perf_counter()
        out = method(train.images, train.labels, ctx)
        seconds = time.perf_counter() - start
        check_budget(method_name, budget, train.images, out)
        return {"images": out}, {
            "generate_s": seconds, "perturbation": perturbation_metrics(train.images, out), "notes": ctx.notes,
        }

    tensors, meta, cached = config.cache.get_or_create("protected", spec, create)
    images = tensors["images"]
    # The engine re-checks the budget on what it loaded, so a cache file can never smuggle in a violation.
    check_budget(method_name, budget, train.images, images)
    return images, {**meta, "cached": cached, "budget": str(budget), "params": method.params(), "key": spec_key(spec)}


def run_cell(cell: Cell, config: GridConfig, progress: Callable[..., Any] = _quiet) -> dict[str, Any]:
    """Train and evaluate one cell; returns its result row (raises on failure)."""
    started = _now()
    t0 = time.perf_counter()
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    images, gen = protected_set(config, cell.method, cell.seed, progress)
    cm = config.countermeasure(cell.countermeasure)
    ctx = make_context(config, cell.seed, train.num_classes, progress)
    cm.setup(ctx)
    t1 = time.perf_counter()
    if cm.cache_preprocess:
        spec = {"protected": gen["key"], "countermeasure": cm.name, "params": cm.params(), "version": __version__}
        tensors, _, _ = config.cache.get_or_create(
            "preprocessed", spec, lambda: ({"images": cm.run_preprocess(images, train.labels, ctx)}, {})
        )
        images = tensors["images"]
    else:
        images = cm.run_preprocess(images, train.labels, ctx)
    t2 = time.perf_counter()
    result = train_victim(
        images, train.labels, test.images, test.labels, train.num_classes,
        config.preset_obj, cm, cell.seed, ctx.device, progress,
    )
    t3 = time.perf_counter()
    return {
        **_identity(cell, config),
        "status": "ok",
        "error": None,
        "final_acc": result.final_acc,
        "peak_acc": result.peak_acc,
        "train_acc": result.train_acc,
        "history": result.history,
        "images_per_second": result.images_per_second,
        "cuda_graph": result.cuda_graph,
        "perturbation": gen["perturbation"],
        "budget": gen["budget"],
        "method_params": gen["params"],
        "method_notes": gen.get("notes", {}),
        "generation_cached": gen["cached"],
        "countermeasure_params": cm.params(),
        "countermeasure_effective_params": cm.effective_params(),
        "countermeasure_family": cm.family,
        "countermeasure_stages": cm.stages(),
        "train_size": len(train),
        "test_size": len(test),
        "seconds": {
            "generate": gen["generate_s"], "preprocess": t2 - t1, "train": t3 - t2, "total": t3 - t0,
        },
        "device": str(ctx.device),
        "started": started,
        "finished": _now(),
    }


def _identity(cell: Cell, config: GridConfig) -> dict[str, Any]:
    p = config.preset_obj
    return {
        "schema": SCHEMA_VERSION,
        "cell_id": cell.cell_id(config),
        "dataset": config.dataset,
        "method": cell.method,
        "countermeasure": cell.countermeasure,
        "model": p.model,
        "preset": p.name,
        "seed": cell.seed,
        "preset_config": p.as_dict(),
        "versions": _versions(),
        "git_commit": _git_commit(),
    }


def failed_row(cell: Cell, config: GridConfig, exc: BaseException) -> dict[str, Any]:
    """The row of a cell that raised: identity, status `failed` and the error."""
    return {
        **_identity(cell, config),
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
        "finished": _now(),
    }


def _run_cell_safely(cell: Cell, config: GridConfig, progress: Callable[..., Any]) -> dict[str, Any]:
    try:
        return run_cell(cell, config, progress)
    except Exception as exc:  # a failing cell becomes a row; the grid goes on
        return failed_row(cell, config, exc)


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


@dataclass
class GridSummary:
    run_dir: Path
    ran: int
    skipped: int
    failed: int


def expand_cells(method_names: list[str], defense_names: list[str], seeds: list[int]) -> list[Cell]:
    return [Cell(m, d, s) for s in seeds for m in method_names for d in defense_names]


def run_grid(
    method_names: list[str],
    defense_names: list[str],
    seeds: list[int],
    out: str | os.PathLike,
    config: GridConfig,
    jobs: int = 1,
    show_progress: bool = True,
) -> GridSummary:
    """Run every pending cell, appending a row per finished cell to OUT/results.jsonl, then
    render OUT/leaderboard.*; cells already `ok` in OUT are skipped (resume)."""
    from .leaderboard import write_leaderboard

    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cells = expand_cells(method_names, defense_names, seeds)
    done = finished_ids(run_dir)
    pending = [c for c in cells if c.cell_id(config) not in done]
    progress: Callable[..., Any] = tqdm if show_progress else _quiet
    failed = 0

    # Generation first, once per (method, seed), so parallel cells only read the cache.
    generation_errors: dict[tuple[str, int], BaseException] = {}
    for method_name, seed in progress(sorted({(c.method, c.seed) for c in pending}), desc="generate", unit="set"):
        try:
            protected_set(config, method_name, seed, progress)
        except Exception as exc:
            generation_errors[(method_name, seed)] = exc

    def record(row: dict[str, Any]) -> None:
        nonlocal failed
        append_row(run_dir, row)
        failed += row["status"] != "ok"

    runnable = []
    for cell in pending:
        if (cell.method, cell.seed) in generation_errors:
            record(failed_row(cell, config, generation_errors[(cell.method, cell.seed)]))
        else:
            runnable.append(cell)

    bar = progress(total=len(runnable), desc="grid", unit="cell") if show_progress else None
    try:
        if jobs <= 1:
            for cell in runnable:
                record(_run_cell_safely(cell, config, progress))
                if bar is not None:
                    bar.update()
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                     initargs=(threads,)) as pool:
                futures = [pool.submit(_run_cell_safely, cell, config, _quiet) for cell in runnable]
                try:
                    for future in as_completed(futures):
                        record(future.result())
                        if bar is not None:
                            bar.update()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    if finished_ids(run_dir):
        write_leaderboard([run_dir], run_dir)
    return GridSummary(run_dir, ran=len(pending), skipped=len(cells) - len(pending), failed=failed)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    import torchvision

    return {
        "uebench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
