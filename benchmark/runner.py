"""The grid: check the environment, build shared artifacts once, run every (method, countermeasure, seed, ratio,
victim) cell, store one row per cell."""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from tqdm.auto import tqdm

from .cache import ArtifactCache, spec_key
from .data import (
    ImageSet, full_split, heldout_split, load_dataset, load_splits, poison_mask, split_digests, split_positions,
    user_cache_dir,
)
from .imported import PREFIX, ImportedSet, place
from .identity import (
    device_name, digest, git_state, library_versions, machine, plugin_code, plugin_identity, plugin_label,
    preset_identity,
)
from .metrics import BudgetError, perturbation_metrics
from .plugins import Context, Countermeasure, Method, build
from .progress import GridProgress, clock
from .presets import PLUMBING_ONLY, Preset, get_preset, preset_label
from .registry import countermeasures, methods, models
from .row import Row
from .store import RunLock, append_row, carry_rows, finished_ids
from .surrogates import surrogate_model
from .training import TRAINER_VERSION, train_victim

if TYPE_CHECKING:
    from .ray_executor import RayOptions

ENV_CACHE_DIR = "UEBENCH_CACHE_DIR"
POISON_SELECTION_SEED = 0  # fixed: at one ratio every method and seed protects the same images


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
    download: bool = False
    method_args: dict[str, dict[str, str]] = field(default_factory=dict)
    countermeasure_args: dict[str, dict[str, str]] = field(default_factory=dict)
    budgets: dict[str, str] = field(default_factory=dict)  # imported set's name → threat model (`linf:8`)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        for name in self.method_args:
            self.method(name)  # bad parameter names or values fail here, before any work
        for name in self.countermeasure_args:
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
        device = torch.device(self.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"--device {self.device}: torch {torch.__version__} sees no GPU (torch.cuda.is_available() is "
                    "False); use --device cpu or auto"
                )
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(f"--device {self.device}: only {torch.cuda.device_count()} GPU(s) visible")
        return device

    @property
    def cache(self) -> ArtifactCache:
        root = self.cache_dir or os.environ.get(ENV_CACHE_DIR) or user_cache_dir() / "artifacts"
        return ArtifactCache(root)

    def method(self, name: str) -> Method:
        """The method `name`: a registered one with its arguments, or `file:PATH`, a protected set read from disk."""
        if name.startswith(PREFIX):
            path = name[len(PREFIX):]
            return ImportedSet(path=path, budget_spec=self.budgets.get(Path(path).expanduser().stem, "none"))
        return build(methods.get(name), self.method_args.get(name, {}))  # type: ignore[return-value]

    def countermeasure(self, name: str) -> Countermeasure:
        return build(countermeasures.get(name), self.countermeasure_args.get(name, {}))  # type: ignore[return-value]


@dataclass(frozen=True)
class Cell:
    method: str
    countermeasure: str
    seed: int
    poison_ratio: float = 1.0  # the share of the training set that is protected; the rest stays clean
    model: str | None = None  # the victim; None: the preset's

    def victim(self, config: GridConfig) -> str:
        """The registered name of the network this cell trains."""
        return self.model or config.preset_obj.model

    def identity(self, config: GridConfig) -> dict[str, Any]:
        """Everything that decides this cell's number."""
        p = config.preset_obj
        identity = {
            "dataset": config.dataset, "data": split_digests(config.dataset, config.data_root, config.preset),
            "preset": preset_identity(p), "model": plugin_code(models.get(self.victim(config))),
            "method": plugin_identity(config.method(self.method), p),
            "countermeasure": plugin_identity(config.countermeasure(self.countermeasure), p),
            "seed": self.seed, "trainer": TRAINER_VERSION,
        }
        if self.poison_ratio != 1.0:  # the full protocol keeps the identity it had before ratios existed
            identity["poison"] = {"ratio": self.poison_ratio, "selection_seed": POISON_SELECTION_SEED}
        return identity

    def cell_id(self, config: GridConfig, identity: dict[str, Any] | None = None) -> str:
        """A readable path of names, then the full SHA-256 of the identity."""
        p = config.preset_obj
        ratio = "" if self.poison_ratio == 1.0 else f"/ratio{self.poison_ratio:g}"
        method = config.method(self.method).name
        readable = f"{config.dataset}/{p.name}/{self.victim(config)}/{method}/{self.countermeasure}/seed{self.seed}{ratio}"
        return f"{readable}/{digest(identity or self.identity(config))}"


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


def protected_spec(config: GridConfig, method_name: str, seed: int) -> dict[str, Any]:
    """Everything that decides a protected set (the trainer too: it makes the surrogates that methods attack)."""
    return {
        "dataset": config.dataset, "train": split_digests(config.dataset, config.data_root, config.preset)["train"],
        "preset": preset_identity(config.preset_obj), "method": plugin_identity(config.method(method_name), config.preset_obj),
        "seed": seed, "trainer": TRAINER_VERSION,
    }


def protected_set(
    config: GridConfig, method_name: str, seed: int, progress: Callable[..., Any] = _quiet
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The method's protected training set (from the cache when valid) and its generation record; a cached set
    that breaks the method's budget is regenerated."""
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    method = config.method(method_name)
    spec = protected_spec(config, method_name, seed)
    hit = config.cache.load("protected", spec)
    if hit is not None:
        try:
            images, meta = method.check(train.images, hit[0]["images"]), hit[1]
            return images, {**meta, "cached": True, "budget": str(method.budget(tuple(train.images.shape[1:]))),
                            "key": spec_key(spec)}
        except (BudgetError, TypeError, KeyError) as exc:
            warnings.warn(f"cached protected set of {method_name!r} (seed {seed}) is unusable ({exc}); regenerating")
    ctx = make_context(config, seed, train.num_classes, progress)
    start = time.perf_counter()
    images = method(train.images, train.labels, ctx)  # checks shape, dtype and budget
    meta = {"generate_s": time.perf_counter() - start, "perturbation": perturbation_metrics(train.images, images),
            "notes": ctx.notes}
    config.cache.save("protected", spec, {"images": images}, meta)
    return images, {**meta, "cached": False, "budget": str(method.budget(tuple(train.images.shape[1:]))),
                    "key": spec_key(spec)}


def save_gallery(run_dir: Path, config: GridConfig, method_name: str, seed: int, set_key: str) -> None:
    """Write RUN/gallery/LABEL-seedS.png of a cached protected set unless it already shows this set (same cache
    key; then the set is not read); a failure only warns."""
    from .gallery import GALLERY_DIR, gallery_key, gallery_name, write_gallery  # PIL, pandas: the driver's only

    try:
        path = run_dir / GALLERY_DIR / gallery_name(plugin_label(config.method(method_name)), seed)
        if gallery_key(path) == set_key:
            return
        hit = config.cache.load("protected", protected_spec(config, method_name, seed))
        if hit is not None:
            train, _ = load_splits(config.dataset, config.data_root, config.preset)
            write_gallery(path, train.images, hit[0]["images"], train.labels, train.classes, set_key=set_key)
    except Exception as exc:  # a picture is never worth a cell
        warnings.warn(f"gallery of {method_name!r} (seed {seed}) not written: {type(exc).__name__}: {exc}")


def _cell_fields(cell: Cell, config: GridConfig) -> dict[str, Any]:
    """A row's identity and provenance fields."""
    p = config.preset_obj
    method, cm = config.method(cell.method), config.countermeasure(cell.countermeasure)
    identity = cell.identity(config)
    commit, dirty = git_state()
    device = config.torch_device
    return {
        "cell_id": cell.cell_id(config, identity),
        "config_id": digest({k: v for k, v in identity.items() if k != "seed"}),
        "dataset": config.dataset, "preset": preset_label(p), "preset_id": digest(identity["preset"]),
        "model": cell.victim(config),
        "seed": cell.seed, "poison_ratio": cell.poison_ratio, "identity": identity,
        "method": method.name, "method_id": digest(identity["method"]), "method_label": plugin_label(method),
        "method_params": method.params(),
        "countermeasure": cell.countermeasure, "countermeasure_id": digest(identity["countermeasure"]),
        "countermeasure_label": plugin_label(cm), "countermeasure_params": cm.params(),
        "device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
        "machine": machine(),
        "git_commit": commit, "git_dirty": dirty, "versions": {**library_versions(), "plugins": installed_plugins()},
    }


def installed_plugins() -> dict[str, dict[str, str]]:
    """Every registered plugin's version (and distribution, for entry-point plugins), per kind."""

    def describe(obj: Any) -> str:
        code = plugin_code(obj)
        dist = code["distribution"]
        return code["version"] + (f" ({dist['name']} {dist['version']})" if dist else "")

    return {reg.kind: {n: describe(reg.get(n)) for n in reg.names()} for reg in (methods, countermeasures, models)}


def run_cell(
    cell: Cell, config: GridConfig, progress: Callable[..., Any] = _quiet, fresh: frozenset = frozenset()
) -> dict[str, Any]:
    """Train and evaluate one cell; returns its result row (raises on failure). `fresh` holds the
    (method, seed) sets this run generated, which are not 'cached' for its cells."""
    started = _now()
    t0 = time.perf_counter()
    train, test = load_splits(config.dataset, config.data_root, config.preset)
    images, gen = protected_set(config, cell.method, cell.seed, progress)
    poisoned = len(images)
    if cell.poison_ratio != 1.0:  # generated once for the whole set; the ratio only selects its images
        mask = poison_mask(train.labels, train.num_classes, cell.poison_ratio, POISON_SELECTION_SEED)
        images, poisoned = torch.where(mask[:, None, None, None], images, train.images), int(mask.sum())
    cm = config.countermeasure(cell.countermeasure)
    ctx = make_context(config, cell.seed, train.num_classes, progress)
    cm.setup(ctx)
    t1 = time.perf_counter()
    if cm.cache_preprocess:
        spec = {"protected": gen["key"], "countermeasure": plugin_identity(cm, config.preset_obj), "seed": cell.seed}
        if cell.poison_ratio != 1.0:
            spec["poison"] = {"ratio": cell.poison_ratio, "selection_seed": POISON_SELECTION_SEED}
        tensors, _, _ = config.cache.get_or_create(
            "preprocessed", spec, lambda: ({"images": cm.run_preprocess(images, train.labels, ctx)}, {})
        )
        images = tensors["images"]
    else:
        images = cm.run_preprocess(images, train.labels, ctx)
    t2 = time.perf_counter()
    result = train_victim(
        images, train.labels, test.images, test.labels, train.num_classes,
        config.preset_obj, cm, cell.seed, ctx.device, progress, victim=cell.victim(config),
    )
    t3 = time.perf_counter()
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
        generation_cached=gen["cached"] and (cell.method, cell.seed) not in fresh,
        countermeasure_family=cm.family,
        countermeasure_stages=cm.stages(),
        poisoned=poisoned,
        train_size=len(train),
        test_size=len(test),
        seconds={"generate": gen["generate_s"], "preprocess": t2 - t1, "train": t3 - t2, "total": t3 - t0},
        started=started,
        finished=_now(),
    ).as_dict()


def failed_row(cell: Cell, config: GridConfig, exc: BaseException) -> dict[str, Any]:
    """The row of a cell that raised: its identity, parameters and provenance, status `failed` and the error."""
    return Row(
        **_cell_fields(cell, config),
        status="failed",
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(exc)),
        finished=_now(),
    ).as_dict()


def _run_task(task: tuple[Cell, GridConfig, frozenset], progress: Callable[..., Any] = _quiet) -> dict[str, Any]:
    """One cell: its row, ok or failed."""
    cell, config, fresh = task
    try:
        return run_cell(cell, config, progress, fresh)
    except Exception as exc:  # a failing cell becomes a row; the grid goes on
        return failed_row(cell, config, exc)


@dataclass
class GridSummary:
    run_dir: Path
    ran: int
    skipped: int
    failed: int


def expand_cells(
    method_names: list[str], countermeasure_names: list[str], seeds: list[int], ratios: list[float] = (1.0,),
    victims: list[str | None] = (None,),
) -> list[Cell]:
    return [Cell(m, d, s, r, v) for v in victims for r in ratios for s in seeds for m in method_names
            for d in countermeasure_names]


def _check_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None


def preflight(
    method_names: list[str], countermeasure_names: list[str], seeds: list[int], run_dir: Path, config: GridConfig, jobs: int,
    ratios: list[float] = (1.0,), victims: list[str | None] = (None,),
) -> list[Cell]:
    """Check everything a grid needs before any work, raising a clear error; returns its cells."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    for what, names, registry in (("methods", method_names, methods), ("countermeasures", countermeasure_names, countermeasures)):
        if not names:
            raise ValueError(f"no {what} selected; valid {what}: {', '.join(registry.names())}")
    if not seeds:
        raise ValueError("no seeds selected: pass --seeds 0,1,2")
    bad = [r for r in ratios if not 0 < r <= 1]
    if bad or not ratios:
        raise ValueError(f"--poison-ratios must be fractions in (0, 1], e.g. 0.5,0.8,1.0; got {list(ratios)}")
    if not victims:
        raise ValueError(f"no models selected; valid models: {', '.join(models.names())}")
    for name in victims:  # an unknown name or a missing optional dependency fails here
        if name is not None:
            models.get(name)(num_classes=2)
    config.torch_device
    for train in (True, False):  # a missing or corrupt dataset fails here, naming the file, before any folder is made
        load_dataset(config.dataset, train, config.data_root, download=config.download)
    _check_writable(run_dir, "output folder")
    _check_writable(config.cache.root, "cache folder")
    cells = expand_cells(method_names, countermeasure_names, seeds, list(ratios), list(victims))
    for name in countermeasure_names:  # settings that a preset cannot give (e.g. no table entry) fail here
        plugin_identity(config.countermeasure(name), config.preset_obj)
    named: dict[str, str] = {}
    for name in method_names:
        shown = config.method(name).name
        if shown in named:  # an imported set is named by its file's stem
            raise ValueError(f"{name} and {named[shown]} would both be method {shown!r}; rename the file")
        named[shown] = name
        plugin_identity(config.method(name), config.preset_obj)
        if name.startswith(PREFIX):  # an imported set is read and checked against the split now
            split = full_split(config.dataset, True, config.data_root)
            place(name[len(PREFIX):], split.images, split.labels)
    return cells


def run_grid(
    method_names: list[str],
    countermeasure_names: list[str],
    seeds: list[int],
    out: str | os.PathLike,
    config: GridConfig,
    jobs: int = 1,
    show_progress: bool = True,
    ratios: list[float] = (1.0,),
    victims: list[str | None] = (None,),
    reuse: list[str | os.PathLike] = (),
    ray_options: RayOptions | None = None,
) -> GridSummary:
    """Run every pending cell, appending a row per finished cell to OUT/results.jsonl, then render
    OUT/leaderboard.*; cells already `ok` in OUT are skipped (resume), and so are those whose `ok` row (same cell
    id) is found in `reuse` (run folders or rows files), copied into OUT first. One run per folder at a time.
    Cells run here and in `jobs` processes, or with `ray_options` as a Ray task graph (benchmark/ray_executor.py).
    With `show_progress`: a plan with an ETA first, then a bar on a terminal or one line per finished item."""
    from . import scheduler  # it imports this module
    from .leaderboard import write_leaderboard

    run_dir = Path(out)
    if ray_options is not None:
        from . import ray_executor

        config = ray_executor.worker_config(config, ray_options)
    cells = preflight(method_names, countermeasure_names, seeds, run_dir, config, jobs, ratios, victims)
    progress: Callable[..., Any] = tqdm if show_progress and sys.stderr.isatty() else _quiet  # plugins' own bars

    with RunLock(run_dir), ExitStack() as stack:
        done = finished_ids(run_dir)
        if reuse:
            carried = carry_rows(reuse, run_dir, {c.cell_id(config) for c in cells} - done)
            if carried:
                commits = Counter(str(r.get("git_commit") or "unknown")[:7] for r in carried)
                print(f"{len(carried)} finished cell(s) taken from earlier rows instead of computed (commit "
                      f"{', '.join(f'{c}: {n}' for c, n in commits.most_common())}; --recompute computes them): "
                      f"{', '.join(sorted({Path(r['carried_from']).name for r in carried}))}", file=sys.stderr)
            done |= {r["cell_id"] for r in carried}
        pending = [c for c in cells if c.cell_id(config) not in done]
        sets = sorted({(c.method, c.seed) for c in pending})
        prepares = sorted({c.countermeasure for c in pending})
        if ray_options is not None and pending:
            stack.enter_context(ray_executor.connected(ray_options, config))
        log = GridLog(run_dir)
        if show_progress and pending:
            if ray_options is None:
                with scheduler.torch_threads(scheduler.task_threads(config.torch_device, jobs)):  # as tasks will run
                    plan, how = _plan(config, pending, sets, prepares).spread(jobs), f"--jobs {jobs}"
            else:
                plan, how = ray_executor.plan_on_ray(ray_options, config, pending, sets, prepares)
            print(_plan_text(config, len(cells), len(pending), plan, how), file=sys.stderr, flush=True)
            heavy = sum(v > 0 for v in plan.prepares.values())
            log = GridLog(run_dir, plan, GridProgress(sum(plan.sets.values()) + sum(plan.prepares.values()),
                                                      sum(plan.cells.values()), len(sets) + heavy, len(pending),
                                                      classes=plan.classes(), slots=plan.slots))
        try:
            if ray_options is None:
                scheduler.run_local(pending, sets, prepares, config, jobs, log, progress)
            elif pending:
                ray_executor.run_on_ray(pending, sets, prepares, config, ray_options, log)
        except BaseException:  # Ctrl-C or a crash: the board still shows every row written so far
            if log.recorded:
                _render_quietly(run_dir)
            raise
        finally:
            log.close()
        if finished_ids(run_dir):
            write_leaderboard([run_dir], run_dir)
    return GridSummary(run_dir, ran=len(pending), skipped=len(cells) - len(pending), failed=log.failed)


def _render_quietly(run_dir: Path) -> None:
    """Re-render OUT/leaderboard.* on the way out of an interrupted grid; a failure there only warns, so the
    interruption's own message is not hidden."""
    from .leaderboard import write_leaderboard

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_leaderboard([run_dir], run_dir)
    except Exception as exc:  # noqa: BLE001 - the rows are safe in results.jsonl; only the tables are stale
        warnings.warn(f"could not re-render the leaderboard of {run_dir}: {exc}")


@dataclass
class GridLog:
    """The driver's account of a grid: the only writer of OUT/results.jsonl, and with a plan, the progress
    line of every finished piece (protected set, prepared countermeasure, cell)."""

    run_dir: Path
    plan: Plan | None = None
    meter: GridProgress | None = None
    failed: int = 0
    recorded: int = 0  # rows appended by this grid

    def record(self, cell: Cell, row: dict[str, Any], running: int | None = None) -> None:
        """Append a cell's row and report it; `running`: how many cells are running or queued, when known."""
        append_row(self.run_dir, row)
        self.recorded += 1
        self.failed += row["status"] != "ok"
        if self.meter is not None:
            outcome = f"{100 * row['final_acc']:.1f}%" if row["status"] == "ok" else row["status"]
            extra = "" if running is None else f" · {running} running or queued · {self.failed} failed"
            seconds = (row.get("seconds") or {}).get("total") if row["status"] == "ok" else None
            self.meter.advance("cell", self.plan.cells[cell], f"{row['cell_id'].rsplit('/', 1)[0]}: {outcome}{extra}",
                               self.plan.cost_class.get(cell), seconds)

    def protected(self, method_name: str, seed: int, outcome: str, seconds: float | None = None) -> None:
        """Report a protected set made (in `seconds`), found in the cache or failed."""
        if self.meter is not None:
            key = (method_name, seed)
            self.meter.advance("artifact", self.plan.sets[key], f"protected set {method_name} seed {seed} {outcome}",
                               self.plan.cost_class.get(key), seconds)

    def prepared(self, name: str, outcome: str, seconds: float | None = None) -> None:
        """Report a countermeasure's `prepare` (made in `seconds`), unless it prepares nothing worth a line."""
        if self.meter is not None and self.plan.prepares[name] > 0:
            self.meter.advance("artifact", self.plan.prepares[name], f"countermeasure {name} {outcome}",
                               self.plan.cost_class.get(name), seconds)

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()


@dataclass
class Plan:
    """Estimated seconds of each piece of pending work, and the victims' measured training time."""

    sets: dict[tuple[str, int], float]
    prepares: dict[str, float]
    cells: dict[Cell, float]
    victim_s: dict[str, float]  # one training under `none`, measured where the cells run
    cached: int  # protected sets already in the cache
    # each piece's cost class: a method's sets, a countermeasure's prepare, a countermeasure family on one victim
    cost_class: dict[Any, str] = field(default_factory=dict)
    slots: int = 1  # pieces at a time

    def spread(self, slots: int) -> Plan:
        """The same work with `slots` pieces at a time: each piece's estimate becomes its share of the wall time."""
        return Plan({k: v / slots for k, v in self.sets.items()}, {k: v / slots for k, v in self.prepares.items()},
                    {k: v / slots for k, v in self.cells.items()}, self.victim_s, self.cached, self.cost_class, slots)

    def classes(self) -> dict[str, tuple[str, float, int]]:
        """Per cost class: its kind (artifact or cell), its estimated seconds and its number of pieces."""
        totals: dict[str, list] = {}
        for kind, pieces in (("artifact", self.sets), ("artifact", self.prepares), ("cell", self.cells)):
            for key, seconds in pieces.items():
                entry = totals.setdefault(self.cost_class.get(key, kind), [kind, 0.0, 0])
                entry[1] += seconds
                entry[2] += 1
        return {name: (kind, seconds, n) for name, (kind, seconds, n) in totals.items()}


def _plan(config: GridConfig, pending: list[Cell], sets: list[tuple[str, int]], prepares: list[str]) -> Plan:
    """Estimates from the plugins' cost hints and each victim's training time measured on this device."""
    from .cost import measure_model

    p = config.preset_obj
    victims = sorted({c.victim(config) for c in pending} | {p.model})
    victim_s = {v: measure_model(v, p, config.torch_device).cell_s for v in victims}
    cached = {s for s in sets if config.cache.paths("protected", spec_key(protected_spec(config, *s)))[0].exists()}
    classes: dict[Any, str] = {s: f"set:{s[0]}" for s in sets} | {n: f"prepare:{n}" for n in prepares}
    classes |= {c: f"cell:{config.countermeasure(c.countermeasure).family}/{c.victim(config)}" for c in pending}
    return Plan(
        sets={s: 0.0 if s in cached else config.method(s[0]).cost * victim_s[p.model] for s in sets},
        prepares={n: config.countermeasure(n).prepare_cost * victim_s[p.model] for n in prepares},
        cells={c: config.countermeasure(c.countermeasure).cost * victim_s[c.victim(config)] for c in pending},
        victim_s=victim_s, cached=len(cached), cost_class=classes,
    )


def _plan_text(config: GridConfig, total: int, pending: int, plan: Plan, how: str) -> str:
    """What the grid is about to do and roughly how long it takes `how` it runs (`--jobs 2`)."""
    p = config.preset_obj
    estimate = sum(plan.sets.values()) + sum(plan.prepares.values()) + sum(plan.cells.values())
    victims = ", ".join(f"{v} {s:.0f} s" for v, s in plan.victim_s.items())
    lines = [
        f"preset {p.name}: {p.summary}",
        f"{total} cells: {pending} to run, {total - pending} already finished; {len(plan.sets)} protected set(s) "
        f"({plan.cached} cached), {sum(v > 0 for v in plan.prepares.values())} countermeasure(s) to prepare",
        f"estimated time: about {clock(estimate)} at {how} (one victim training measured: {victims}; "
        "the rest from rough per-plugin cost hints, refined as cells finish)",
    ]
    if p.name in PLUMBING_ONLY:
        lines.append(f"preset {p.name}: the numbers test the plumbing only; use --preset quick for results")
    cores = os.cpu_count() or 1
    if config.torch_device.type == "cpu" and how == "--jobs 1" and cores > 1:
        lines.append(f"each task computes on one thread: --jobs {cores} would use all {cores} cores of this machine")
    return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
