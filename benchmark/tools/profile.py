"""`profile`: one piece of each stage kind at a preset, timed, and the time of the grid it projects.

Timed: the clean surrogate's fit, each method's protected-set generation, each countermeasure's `prepare` (the
DDPM fit of `diffusion`), its pre-processing, a few epochs of its victim training, and the evaluations of a cell.
Everything runs in a temporary cache folder, deleted after, so every artifact is made and timed; with `use_cache`
that folder starts as links to the files of the configured cache, which is read and never written: a protected set
or surrogate found there reports the time recorded when it was made, a `prepare` that finds its model only loads it.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from ..data import load_splits
from ..engine.cells import Cell, ResolvedCell
from ..engine.config import GridConfig
from ..engine.cost import synchronize
from ..engine.recipe import make_context, protected_spec, save_protected_set, stage_cell, train_cell
from ..engine.surrogates import forget, surrogate_model, surrogate_spec
from ..evaluation import evaluate
from ..identity import device_name, plugin_code
from ..plugins import Countermeasure
from ..progress import quiet
from ..registry import models
from .profile_report import CACHED, MEASURED, RECORDED, CountermeasureCost, EvaluationCost, Profile, Timed, render

__all__ = ["CountermeasureCost", "EvaluationCost", "Profile", "Timed", "profile_grid", "render", "schedule_epoch"]


def schedule_epoch(call: int, steps: int, measured: int, schedule: int) -> int:
    """The schedule epoch that measured training step `call` stands for: the steps sweep the schedule once."""
    return min(schedule - 1, call * schedule // max(1, steps * measured))


class ScheduleSweep(Countermeasure):
    """`inner` with `schedule_epoch` passed to its training step: a short training meets every kind of epoch."""
    # e.g. UEraser repeats its copies in the first 30 % of the epochs only

    def __init__(self, inner: Countermeasure, steps: int, measured: int, schedule: int) -> None:
        self.inner, self.steps, self.measured, self.schedule, self.calls = inner, steps, measured, schedule, 0
        self.family = inner.family

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.augment(x, y, gen)

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        epoch = schedule_epoch(self.calls, self.steps, self.measured, self.schedule)
        self.calls += 1
        return self.inner.training_step(model, x, y, epoch)


def link_cache(source: Path, target: Path) -> int:
    """Link every file of the cache `source` into `target`, returning their count; `source` is then only read."""
    # a write (always a rename onto the path: `atomic_write`) replaces the link, never the file it points to
    count = 0
    for path in source.rglob("*"):
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".lock":  # a lock is opened to write
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
            count += 1
    return count


def _own_files(root: Path) -> set[Path]:
    """The files under `root` that are not links: what this profile made."""
    return {p for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _timer(device: torch.device) -> Callable[[], float]:
    """A clock that first waits for the device's queued work."""

    def now() -> float:
        synchronize(device)
        return time.perf_counter()

    return now


def fit_surrogate(config: GridConfig, arch: str) -> Timed:
    """The clean surrogate `arch`: fitted and timed, or loaded with the training time recorded in the cache."""
    now = _timer(config.torch_device)
    hit = config.cache.load("surrogate", surrogate_spec(config, arch))
    start = now()
    surrogate_model(config, arch)
    if hit is not None and "train_s" in hit[1]:
        return Timed(float(hit[1]["train_s"]), RECORDED)
    return Timed(now() - start)


def generate(
    config: GridConfig, name: str, seed: int, fits: dict[str, Timed], asked: list[str],
) -> tuple[torch.Tensor, Timed]:
    """Method `name`'s protected set and its generation time, the surrogates it asks for timed apart into `fits`."""
    # each surrogate's architecture is appended to `asked`; a set found in the cache reports its recorded time
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    method = config.method(name)
    hit = config.cache.load("protected", protected_spec(config, method, seed))
    if hit is not None and "generate_s" in hit[1]:
        return method.check(train.images, hit[0]["images"]), Timed(float(hit[1]["generate_s"]), RECORDED)
    now = _timer(config.torch_device)
    ctx = make_context(config, seed, train.num_classes, quiet)
    memo = ctx.surrogate_fn
    apart = 0.0

    def surrogate(arch: str) -> torch.nn.Module:
        nonlocal apart
        asked.append(arch)
        start = now()
        if arch not in fits:
            fits[arch] = fit_surrogate(config, arch)
        model = memo(arch)
        apart += now() - start
        return model

    ctx.surrogate_fn = surrogate
    start = now()
    images = method(train.images, train.labels, ctx)
    seconds = max(0.0, now() - start - apart)
    # saved as the grid saves it, so the countermeasures' cells below read it back
    save_protected_set(config, method, seed, images, seconds, ctx.notes,
                       {arch: plugin_code(models.get(arch)) for arch in dict.fromkeys(asked)})
    return images, Timed(seconds)


def prepare(config: GridConfig, cm: Countermeasure, num_classes: int) -> Timed:
    """Countermeasure `cm`'s `prepare`, timed: measured when it made an artifact, else a load from the cache."""
    now = _timer(config.torch_device)
    before = _own_files(config.cache.root)
    start = now()
    cm.prepare(make_context(config, 0, num_classes, quiet))
    seconds = now() - start
    return Timed(seconds, MEASURED if _own_files(config.cache.root) - before else CACHED)


def train_countermeasure(config: GridConfig, cell: ResolvedCell, epochs: int) -> tuple[CountermeasureCost, torch.nn.Module]:
    """`cell`'s pre-processing (not cached) and `epochs` epochs of its victim, timed; the cost and the trained
    victim."""
    preset, device, now = config.preset_obj, config.torch_device, _timer(config.torch_device)
    staged = stage_cell(cell, config, cache_preprocess=False)
    cm = staged.countermeasure
    preprocess_s = staged.preprocess_s if "preprocess" in cm.stages() else 0.0
    steps = len(staged.images) // min(preset.batch_size, len(staged.images))
    stepper = ScheduleSweep(cm, steps, epochs, preset.epochs) if "training_step" in cm.stages() else cm
    schedule = dataclasses.replace(preset, epochs=epochs, eval_every=epochs)  # one test evaluation, after the last
    result = train_cell(staged, config, schedule=schedule, regime=stepper)
    start = now()
    evaluate(result.model, staged.test.images, staged.test.labels, device)  # the one inside result.seconds, again
    epoch_s = max(0.0, result.seconds - (now() - start)) / epochs
    return CountermeasureCost(cm.name, cm.family, cm.stages(), preprocess_s, epoch_s, epochs), result.model


def measure_evaluation(config: GridConfig, model: torch.nn.Module) -> EvaluationCost:
    """A cell's evaluations with a trained victim: one test-set evaluation, the training-set one, their count."""
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    p, device, now = config.preset_obj, config.torch_device, _timer(config.torch_device)
    start = now()
    evaluate(model, test.images, test.labels, device)
    middle = now()
    evaluate(model, train.images, train.labels, device)
    evaluations = sum(1 for e in range(1, p.epochs + 1) if e % p.eval_every == 0 or e == p.epochs)
    return EvaluationCost(middle - start, now() - middle, evaluations)


def profile_grid(
    config: GridConfig, method_names: list[str], countermeasure_names: list[str], epochs: int = 1, seed: int = 0,
    use_cache: bool = False, log: Callable[[str], None] = lambda text: None,
) -> Profile:
    """Time every stage of the grid `method_names` × `countermeasure_names` in a temporary cache folder."""
    # with `use_cache` the folder starts as links to the config's cache, read only; `log` hears each stage start
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    for what, names in (("methods", method_names), ("countermeasures", countermeasure_names)):
        if not names:
            raise ValueError(f"no {what} selected")
    source = config.cache.root.expanduser()
    if use_cache and not source.is_dir():
        raise ValueError(f"--use-cache: no cache folder at {source}")
    built = [config.countermeasure(n) for n in countermeasure_names]  # bad settings fail before any work
    device = config.torch_device
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="uebench-profile-") as folder:
        work = dataclasses.replace(config, cache_dir=folder)
        if use_cache:
            log(f"linking the {link_cache(source, Path(folder))} files of {source} (read only)")
        try:
            return _profile(work, method_names, built, epochs, seed, str(source) if use_cache else "temporary", log,
                            device, load, t0)
        finally:
            forget(folder)


def _profile(
    config: GridConfig, method_names: list[str], built: list[Countermeasure], epochs: int, seed: int, cache: str,
    log: Callable[[str], None], device: torch.device, load: list[float], t0: float,
) -> Profile:
    """`profile_grid` in its prepared cache folder."""
    p = config.preset_obj
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    result = Profile(p.name, config.dataset, str(device), device_name(device), torch.get_num_threads(), p.epochs,
                     epochs, list(method_names), method_names[0], cache)
    log(f"surrogate {p.model}")
    result.surrogate[p.model] = fit_surrogate(config, p.model)
    for name in method_names:
        log(f"generate {name}")
        asked: list[str] = []
        _, result.generation[name] = generate(config, name, seed, result.surrogate, asked)
        if asked:
            result.surrogate_used_by.append(name)
    for cm in built:
        if type(cm).prepare is not Countermeasure.prepare:
            log(f"prepare {cm.name}")
            result.prepare[cm.name] = prepare(config, cm, train.num_classes)
    model = None
    for cm in built:
        log(f"pre-process and train {cm.name} ({epochs} epoch{'s' * (epochs > 1)})")
        result.countermeasures[cm.name], trained = train_countermeasure(
            config, Cell(method_names[0], cm.name, seed).resolve(config, countermeasure=cm), epochs)
        model = trained if model is None else model
    log("evaluate")
    result.evaluation = measure_evaluation(config, model)
    result.load_average = [load[0], os.getloadavg()[0]]
    result.wall_s = time.perf_counter() - t0
    return result
