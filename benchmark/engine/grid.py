"""`run_grid`: check everything first, take the folder's lock, carry finished rows, plan, run the pending work on
an executor, render the board."""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tqdm.auto import tqdm

from ..data import full_split, load_dataset
from ..imported import PREFIX, place
from ..progress import GridProgress, quiet
from ..registry import countermeasures, methods, models
from ..store.rows import RunLock, carry_rows, finished_ids
from . import local
from .cells import ResolvedCell, expand_cells, resolve_cells
from .config import GridConfig
from .log import GridLog
from .plan import estimate, plan_text

if TYPE_CHECKING:
    from .ray_executor import RayOptions


@dataclass
class GridSummary:
    run_dir: Path
    ran: int
    skipped: int
    failed: int



def check_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None


def preflight(
    method_names: list[str], countermeasure_names: list[str], seeds: list[int], run_dir: Path, config: GridConfig, jobs: int,
    ratios: list[float] = (1.0,), victims: list[str | None] = (None,),
) -> list[ResolvedCell]:
    """Check everything a grid needs before any work, raising a clear error; returns its cells resolved (each plugin
    built once with its arguments, every identity and id computed: a setting no preset can give fails here)."""
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
    check_writable(run_dir, "output folder")
    check_writable(config.cache.root, "cache folder")
    cells = resolve_cells(expand_cells(method_names, countermeasure_names, seeds, list(ratios), list(victims)), config)
    named: dict[str, str] = {}
    for name, method in {c.cell.method: c.method for c in cells}.items():
        if method.name in named:  # an imported set is named by its file's stem
            raise ValueError(f"{name} and {named[method.name]} would both be method {method.name!r}; rename the file")
        named[method.name] = name
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
    Cells run here and in `jobs` processes, or with `ray_options` as a Ray task graph (benchmark/engine/ray_executor.py).
    With `show_progress`: a plan with an ETA first, then a bar on a terminal or one line per finished item."""
    from ..report.tables import write_leaderboard  # pandas and matplotlib: the driver's only

    run_dir = Path(out)
    if ray_options is not None:
        from . import ray_executor  # ray is an optional dependency

        config = ray_executor.worker_config(config, ray_options)
    cells = preflight(method_names, countermeasure_names, seeds, run_dir, config, jobs, ratios, victims)
    progress: Callable[..., Any] = tqdm if show_progress and sys.stderr.isatty() else quiet  # plugins' own bars

    with RunLock(run_dir), ExitStack() as stack:
        done = finished_ids(run_dir)
        if reuse:
            carried = carry_rows(reuse, run_dir, {c.cell_id for c in cells} - done)
            if carried:
                commits = Counter(str(r.get("git_commit") or "unknown")[:7] for r in carried)
                print(f"{len(carried)} finished cell(s) taken from earlier rows instead of computed (commit "
                      f"{', '.join(f'{c}: {n}' for c, n in commits.most_common())}; --recompute computes them): "
                      f"{', '.join(sorted({Path(r['carried_from']).name for r in carried}))}", file=sys.stderr)
            done |= {r["cell_id"] for r in carried}
        pending = [c for c in cells if c.cell_id not in done]
        sets = {c.set_key: c.method for c in sorted(pending, key=lambda c: c.set_key)}
        prepares = {c.cell.countermeasure: c.countermeasure for c in sorted(pending, key=lambda c: c.cell.countermeasure)}
        if ray_options is not None and pending:
            stack.enter_context(ray_executor.connected(ray_options, config))
        log = GridLog(run_dir)
        if show_progress and pending:
            if ray_options is None:
                with local.torch_threads(local.task_threads(config.torch_device, jobs)):  # as tasks will run
                    plan, how = estimate(config, pending, sets, prepares).spread(jobs), f"--jobs {jobs}"
            else:
                plan, how = ray_executor.plan_on_ray(ray_options, config, pending, sets, prepares)
            print(plan_text(config, len(cells), len(pending), plan, how), file=sys.stderr, flush=True)
            heavy = sum(v > 0 for v in plan.prepares.values())
            log = GridLog(run_dir, plan, GridProgress(sum(plan.sets.values()) + sum(plan.prepares.values()),
                                                      sum(plan.cells.values()), len(sets) + heavy, len(pending),
                                                      classes=plan.classes(), slots=plan.slots))
        try:
            if ray_options is None:
                local.run_local(pending, sets, prepares, config, jobs, log, progress)
            elif pending:
                ray_executor.run_on_ray(pending, sets, prepares, config, ray_options, log)
        except BaseException:  # Ctrl-C or a crash: the board still shows every row written so far
            if log.recorded:
                render_quietly(run_dir)
            raise
        finally:
            log.close()
        if finished_ids(run_dir):
            write_leaderboard([run_dir], run_dir)
    return GridSummary(run_dir, ran=len(pending), skipped=len(cells) - len(pending), failed=log.failed)


def render_quietly(run_dir: Path) -> None:
    """Re-render OUT/leaderboard.* on the way out of an interrupted grid; a failure there only warns, so the
    interruption's own message is not hidden."""
    from ..report.tables import write_leaderboard

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_leaderboard([run_dir], run_dir)
    except Exception as exc:  # noqa: BLE001 - the rows are safe in results.jsonl; only the tables are stale
        warnings.warn(f"could not re-render the leaderboard of {run_dir}: {exc}")
