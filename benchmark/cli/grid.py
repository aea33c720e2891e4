"""The commands that run cells: `run` and `frontier`."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..presets import plumbing_only
from ..registry import countermeasures, methods, models
from ..store.rows import published_rows_files
from .arguments import FRONTIER_COUNTERMEASURES, expand_methods, parse_budgets, parse_plugin_args

if TYPE_CHECKING:
    from ..engine.ray_executor import RayOptions


def ray_options_of(args: argparse.Namespace) -> RayOptions | None:
    """The Ray settings of `run --executor ray`, or None for the local executor; flags of the other are refused."""
    given = [flag for flag, value in (("--ray-address", args.ray_address), ("--cpus-per-cell", args.cpus_per_cell),
                                      ("--gpus-per-cell", args.gpus_per_cell)) if value is not None]
    if args.executor != "ray":
        if given:
            raise ValueError(f"{', '.join(given)}: only with --executor ray")
        return None
    if args.jobs is not None:
        raise ValueError("--jobs is the local executor's: under --executor ray the cluster's CPUs and GPUs, shared "
                         "out by --cpus-per-cell and --gpus-per-cell, decide how many cells run at once")
    from ..engine.ray_executor import RayOptions

    return RayOptions(args.ray_address, 1 if args.cpus_per_cell is None else args.cpus_per_cell,
                      0.0 if args.gpus_per_cell is None else args.gpus_per_cell)


def reuse_sources(args: argparse.Namespace) -> list[str | Path]:
    """Where finished rows may come from: none with --recompute, else --reuse, else the published boards."""

    if args.recompute:
        return []
    return args.reuse if args.reuse is not None else list(published_rows_files())


def run(args: argparse.Namespace) -> int:
    """`run`: a method × countermeasure grid, resumable."""
    from ..engine.config import GridConfig
    from ..engine.grid import run_grid

    ray_options = ray_options_of(args)  # before any work: Ray missing or a flag that does not fit
    method_names = expand_methods(args.methods)
    if not args.no_clean and "clean" not in method_names:
        method_names.insert(0, "clean")
    config = GridConfig(
        dataset=args.dataset,
        preset=args.preset,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        device=args.device,
        download=args.download,
        method_args=parse_plugin_args(args.method_args, methods, "--method-args"),
        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures, "--countermeasure-args"),
        budgets=parse_budgets(args.budget),
    )
    out = Path(args.out or Path("results") / "runs" / f"{args.dataset}-{args.preset}")
    countermeasure_names = countermeasures.expand(args.countermeasures)
    victims = models.expand(args.models) if args.models is not None else [None]
    for flag, given, grid in (("--method-args", config.method_args, method_names),
                              ("--countermeasure-args", config.countermeasure_args, countermeasure_names)):
        for name in sorted(set(given) - set(grid)):
            print(f"warning: {flag} names {name!r}, which is not in this grid ({', '.join(grid)}); "
                  "its arguments are unused", file=sys.stderr)
    try:
        summary = run_grid(method_names, countermeasure_names, args.seeds, out, config,
                           1 if args.jobs is None else args.jobs, not args.no_progress, args.poison_ratios, victims,
                           reuse_sources(args), ray_options)
    except KeyboardInterrupt:
        print(
            f"\nInterrupted. Finished cells are kept in {out / 'results.jsonl'}.\n"
            f"Resume with: python -m benchmark {shlex.join(args.argv)}",
            file=sys.stderr,
        )
        return 130
    print(
        f"{summary.ran} cells run ({summary.failed} failed), {summary.skipped} already finished; "
        f"results in {out / 'results.jsonl'}, leaderboard in {out / 'leaderboard.md'}"
        + (f"\n(preset {args.preset}: these numbers test the plumbing only; use --preset quick for results)"
           if plumbing_only(args.preset) else "")
    )
    return 1 if summary.failed else 0


def frontier(args: argparse.Namespace) -> int:
    """`frontier`: each method at a ladder of strengths aimed at target PSNRs, then the curves."""
    from ..engine.config import GridConfig
    from ..report.frontier import write_frontier
    from ..tools.frontier import TARGETS, run_frontier

    out = Path(args.out or Path("results") / "runs" / f"frontier-{args.dataset}-{args.preset}")
    if args.render_only:
        over = countermeasures.expand(args.countermeasures) if args.countermeasures else None
        for path in write_frontier([out], out, over):
            print(path)
        return 0
    names = expand_methods(args.methods)
    if args.methods == "all":
        names = [n for n in names if methods.get(n).strength is not None]
    method_args = parse_plugin_args(args.method_args, methods, "--method-args")
    for name, given in method_args.items():
        knob = methods.get(name).strength
        if knob is not None and knob.param in given:
            raise ValueError(f"--method-args sets {name}.{knob.param}, the knob the frontier's ladder sets; leave it out")
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=method_args,
                        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures,
                                                              "--countermeasure-args"))
    if args.pilot_images < 10:
        raise ValueError(f"--pilot-images must be at least 10, got {args.pilot_images}")
    if args.calibration_rounds < 0:
        raise ValueError(f"--calibration-rounds must be 0 or more, got {args.calibration_rounds}")
    reuse = [] if args.recompute else list(published_rows_files())
    try:
        chosen = countermeasures.expand(args.countermeasures or ",".join(FRONTIER_COUNTERMEASURES))
        paths = run_frontier(config, names, chosen, args.seeds, out,
                             args.targets or list(TARGETS), args.pilot_images, args.jobs,
                             not args.no_progress, reuse, rounds=args.calibration_rounds)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Finished cells are kept in {out / 'results.jsonl'}; run the same command to resume.",
              file=sys.stderr)
        return 130
    for path in paths:
        print(path)
    return 0
