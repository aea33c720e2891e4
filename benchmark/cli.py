"""`python -m benchmark`: run a grid, list plugins and presets, render leaderboards, compare with references, export a
protected set or draw its gallery, measure where a perturbation sits (`bands`), trace a longer victim (`trace`),
profile a preset's time (`profile`), check the GPU path."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .heap import keep_freed_memory
from .imported import PREFIX, parse_budget
from .plugins import Plugin, build
from .presets import PRESETS, Preset, get_preset, plumbing_only
from .registry import PluginLoadError, Registry, countermeasures, methods, models
from .store import RunFolderBusy, published_rows_files

if TYPE_CHECKING:
    import torch

    from .engine.ray_executor import RayOptions

LIST_KINDS = ("methods", "countermeasures", "models", "presets")
PRESET_HELP = "smoke, quick (default) or paper; see `list presets`"
DATASET_HELP = "cifar10 (default), cifar100 or imagenet-subset"
DATA_ROOT_HELP = "dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)"
CACHE_HELP = "artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)"
METHOD_ARGS_HELP = "method parameters, e.g. em.eps=4 lsp.class_sep=5 (`list methods` shows them)"
COUNTERMEASURE_ARGS_HELP = "countermeasure parameters, e.g. gaussian_blur.sigma=0.1 (`list countermeasures` shows them)"
# The columns a frontier runs by default: the countermeasures that decide most verdicts (issue 34).
FRONTIER_COUNTERMEASURES = ("none", "grayscale", "jpeg10", "median_filter", "gaussian_blur", "ueraser", "adv_train",
                            "diffusion")
LIST_ALIASES = {"defenses": "countermeasures"}  # the kind named as the old `run --defenses` flag


def parse_plugin_args(items: list[str], registry: Registry, flag: str) -> dict[str, dict[str, str]]:
    """`name.param=value` items → {name: {param: value}}, names checked against the registry."""
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        name, dot, param = target.partition(".")
        if not sep or not dot or not param:
            raise ValueError(f"{flag} expects NAME.PARAM=VALUE, got {item!r}")
        registry.get(name)
        parsed.setdefault(name, {})[param] = value
    return parsed


def expand_methods(spec: str) -> list[str]:
    """A comma list of registered method names, `all`, and `file:PATH` imported sets, order kept."""
    names: list[str] = []
    for item in (i.strip() for i in spec.split(",")):
        for name in [item] if item.startswith(PREFIX) else methods.expand(item):
            if name not in names:
                names.append(name)
    return names


def parse_budgets(items: list[str]) -> dict[str, str]:
    """`NAME=linf:8` items → {NAME: "linf:8"}, each checked."""
    budgets = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--budget expects NAME=NORM:RADIUS (e.g. mine=linf:8), got {item!r}")
        parse_budget(spec)
        budgets[name] = spec
    return budgets


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects integers separated by commas, got {text!r}") from None


def _ratios(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--poison-ratios expects fractions separated by commas, got {text!r}") from None


def _params(cls: type[Plugin], preset: Preset | None = None, instance: Plugin | None = None) -> str:
    """The parameters as NAME=VALUE; with a preset, one whose value means "the preset's" (0 or empty) shows the
    value it takes there, and a method's strength knob is marked."""
    fields = cls.param_fields()
    if not fields:
        return "-"
    try:
        plugin = instance or cls()
        settings = plugin.settings(preset) if preset is not None else {}
    except (TypeError, ValueError, KeyError):  # a plugin that needs arguments, or a preset it has no entry for
        plugin, settings = None, {}
    knob = getattr(cls, "strength", None)
    shown = []
    for f in fields:
        value = getattr(plugin, f.name) if plugin is not None else f.default
        text = f"{f.name}={value!r}"
        resolved = settings.get(f.name)
        if preset is not None and value in (0, "") and resolved not in (None, value) and not isinstance(value, bool):
            text = f"{f.name}=preset's ({resolved!r} at {preset.name})"
        if knob is not None and knob.param == f.name:
            text += " [strength]"
        shown.append(text)
    return ", ".join(shown)


def list_plugins(
    kind: str, method_args: dict[str, dict[str, str]] | None = None, cost: tuple[Preset, torch.device] | None = None,
    pattern: str = "*", preset: Preset | None = None,
) -> str:
    """The text `python -m benchmark list KIND` prints; methods show the budget of the instance that
    `method_args` ({name: {param: value}}) builds; plugins' parameters that take the preset's value show it at
    `preset`; with `cost` (a preset and a device) models show their measured cost per cell of that preset;
    `pattern` is a shell-style wildcard on names."""
    lines = []
    if kind == "methods":
        for name in methods.names(pattern):
            cls = methods.get(name)
            method = build(cls, (method_args or {}).get(name, {}))
            lines.append(f"{name:14s} {str(method.budget()):32s} {cls.summary()}\n{'':14s} params: "  # type: ignore[attr-defined]
                         f"{_params(cls, preset, method)}")
    elif kind == "countermeasures":
        for name in countermeasures.names(pattern):
            cls = countermeasures.get(name)
            stages = ", ".join(cls.stages()) or "-"
            lines.append(
                f"{name:18s} {cls.family:15s} stages: {stages:24s} {cls.summary()}\n{'':18s} params: {_params(cls, preset)}"
            )
    elif kind == "models":
        if cost is not None:
            from .cost import measure_model

            preset, device = cost
            lines.append(f"{'':12s} {'step s':>7s} {'cell s':>7s}  (measured on {device}: one SGD step at batch "
                         f"{preset.batch_size}, one {preset.name} cell of CIFAR-10 with its evaluations)")
        for name in models.names(pattern):
            doc = (models.get(name).__doc__ or "").strip().split("\n")[0]
            if cost is None:
                lines.append(f"{name:12s} {doc}")
                continue
            try:
                measured = measure_model(name, *cost)
                lines.append(f"{name:12s} {measured.step_s:7.2f} {measured.cell_s:7.0f}  {doc}")
            except ImportError as exc:  # an optional dependency (timm) is missing
                lines.append(f"{name:12s} {'-':>7s} {'-':>7s}  {doc} [{exc}]")
    elif kind == "presets":
        for preset in PRESETS.values():
            lines.append(f"{preset.name}: {preset.summary}")
            lines += [f"    {k:16s} {v}" for k, v in preset.as_dict().items() if k not in ("name", "summary")]
    else:
        raise ValueError(f"unknown list kind {kind!r}; valid kinds: {', '.join(LIST_KINDS)}")
    return "\n".join(lines)


def _preset_spec(text: str) -> str:
    """An argparse type: a preset name, optionally with [field=value,...], checked before any work."""
    try:
        get_preset(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    parser.add_argument("--strict-plugins", action="store_true",
                        help="stop when an entry-point plugin fails to load (default: report it and go on)")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a method × countermeasure grid (resumable)")
    run.add_argument("--methods", default="all",
                     help="comma list of methods, 'all' (default) or file:PATH (an imported protected set)")
    run.add_argument("--countermeasures", "--defenses", dest="countermeasures", default="none",
                     help="comma list of countermeasures or 'all' (default: none)")
    run.add_argument("--preset", default="quick", type=_preset_spec,
                     help="quick (default): the published CPU leaderboard's, whose finished rows a run takes; smoke: "
                          "seconds per cell, its numbers only test the plumbing; paper: the published protocol on a "
                          "GPU (see `list presets`); "
                          "NAME[field=value,...] changes fields, e.g. 'quick[train_per_class=1000]'")
    run.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet-subset")
    run.add_argument("--out", default=None, help="run folder (default: results/runs/DATASET-PRESET)")
    run.add_argument("--data-root", default=None, help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    run.add_argument("--download", action="store_true", help="download the dataset when it is not in the data root")
    run.add_argument("--cache-dir", default=None, help="artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)")
    run.add_argument("--seeds", type=_seeds, default=[0], help="comma list of seeds (default: 0)")
    run.add_argument("--poison-ratios", type=_ratios, default=[1.0], metavar="R,R,...",
                     help="shares of the training set that are protected, e.g. 0.5,0.8,1.0 (default: 1.0)")
    run.add_argument("--models", default=None, metavar="M,M,...",
                     help="victims to train every cell on, e.g. fastcnn,vgg16bn (default: the preset's victim); "
                          "see `list models`")
    run.add_argument("--jobs", type=int, default=None,
                     help="sets and cells run in parallel processes on this machine (default: 1; local executor only); "
                          "on a CPU each computes on one torch thread, so give it the number of cores")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local (default): this machine, --jobs processes; ray: a Ray task graph, on a new local Ray "
                          "or the cluster at --ray-address (pip install -e '.[ray]'; see docs/cluster.md)")
    run.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="with --executor ray: the running cluster to use (default: $RAY_ADDRESS, else the one `ray "
                          "start` last started here, else a new local Ray); its nodes must share the cache folder")
    run.add_argument("--cpus-per-cell", type=int, default=None, metavar="N",
                     help="with --executor ray: CPUs each task holds (default: 1); its torch threads with a GPU, "
                          "else one thread, as locally")
    run.add_argument("--gpus-per-cell", type=float, default=None, metavar="F",
                     help="with --executor ray: the share of a GPU each task holds, e.g. 1 or 0.5 (default: 0, "
                          "cells on CPUs)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--no-clean", action="store_true", help="do not add the clean reference row")
    run.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    run.add_argument("--countermeasure-args", "--defense-args", dest="countermeasure_args", nargs="*", default=[],
                     metavar="NAME.PARAM=VALUE", help=COUNTERMEASURE_ARGS_HELP)
    run.add_argument("--budget", nargs="*", default=[], metavar="NAME=NORM:RADIUS",
                     help="threat model of an imported set, checked like a plugin's: linf:8 (1/255), l2:1.0, l0:1")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--reuse", nargs="+", default=None, metavar="PATH",
                     help="run folders or rows files (*.jsonl) whose finished cells with the same cell id (the hash of "
                          "everything that made the number) are copied into --out instead of being run again "
                          "(default: the published boards' rows, results/leaderboards/, in a checkout)")
    run.add_argument("--recompute", action="store_true",
                     help="compute every cell here, taking no finished row from the published boards or --reuse")

    ls = sub.add_parser("list", help="list registered plugins and presets")
    ls.add_argument("kind", nargs="?", choices=[*LIST_KINDS, *LIST_ALIASES], help="one kind (default: all)")
    ls.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="show the budget of methods built with these parameters")
    ls.add_argument("--names", default="*", metavar="PATTERN", help="only names matching this wildcard, e.g. 'dh*'")
    ls.add_argument("--preset", default="quick", choices=list(PRESETS),
                    help="parameters that take the preset's value show it at this preset, and `list models` measures "
                         "each victim's cost per cell of it (default: quick)")
    ls.add_argument("--device", default="auto", help="where `list models` measures: auto, cpu, cuda or cuda:N")

    lb = sub.add_parser("leaderboard", help="render leaderboard tables from run folders")
    lb.add_argument("run_dirs", nargs="+", metavar="RUN", help="run folders or results .jsonl files")
    lb.add_argument("--out", default=None, help="output folder (default: the first RUN, or its folder for a file)")
    lb.add_argument("--name", default="leaderboard", help="file stem: NAME.csv, NAME.md, NAME.png (default: leaderboard)")
    lb.add_argument("--with-rows", action="store_true", help="also write the rows rendered, one NAME.seedS.jsonl per seed")

    ex = sub.add_parser("export", help="write a method's protected set as .npz, .pt or a PNG folder")
    ex.add_argument("method", help="a registered method (or file:PATH)")
    ex.add_argument("--out", required=True, metavar="FILE.npz|FILE.pt|DIR",
                    help="an .npz or .pt file (uint8 images and labels), or a folder of PNGs, one sub-folder per class")
    ex.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    ex.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    ex.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    ex.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    ex.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    ex.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ex.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    show = sub.add_parser("show", help="draw a method's gallery: per class, images clean, protected and the "
                                       "perturbation amplified, as one PNG")
    show.add_argument("method", help="a registered method (or file:PATH)")
    show.add_argument("--out", required=True, metavar="FILE.png", help="the gallery picture to write")
    show.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    show.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    show.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    show.add_argument("--per-class", type=int, default=2, metavar="N", help="images per class (default: 2)")
    show.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    show.add_argument("--cache-dir", default=None, help="where the set is looked up first (else generated and cached)")
    show.add_argument("--device", default="auto", help="where a set that is not cached is generated")
    show.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    bands = sub.add_parser("bands", help="where each method's perturbation sits in frequency (Haar coarse-band share) "
                                         "and how much of it pre-processing countermeasures keep")
    bands.add_argument("methods", help="comma list of registered methods")
    bands.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    bands.add_argument("--countermeasures", default="median_filter,mean_filter,gaussian_blur,resize,jpeg10",
                       help="pre-processing countermeasures to measure (default: the low-pass ones)")
    bands.add_argument("--images", type=int, default=1000, help="the first N training images (default: 1000)")
    bands.add_argument("--probe", action="store_true",
                       help="also a linear probe: how well the class is read from the perturbation left after each")
    bands.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    bands.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    bands.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    bands.add_argument("--cache-dir", default=None, help="where the sets are looked up first (else generated and cached)")
    bands.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    trace = sub.add_parser("trace", help="train one cell's victim for a schedule of your choosing and trace, at every "
                                         "evaluation, test accuracy, protected-set accuracy and the planted rate")
    trace.add_argument("method", help="a registered method")
    trace.add_argument("--countermeasure", default="none", help="default: none")
    trace.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    trace.add_argument("--epochs", type=int, required=True, help="epochs (the preset's schedule stretched over them)")
    trace.add_argument("--eval-every", type=int, default=5, metavar="N", help="evaluate every N epochs (default: 5)")
    trace.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    trace.add_argument("--seed", type=int, default=0, help="the cell's seed: the protected set's and, by default, the "
                                                             "victim's (default: 0)")
    trace.add_argument("--victim-seed", type=int, default=None, help="seed the victim alone (initialisation, batch "
                                                                      "order, augmentation), keeping the set of --seed")
    trace.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    trace.add_argument("--cache-dir", default=None, help="where the set is looked up first (else generated and cached)")
    trace.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    trace.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    trace.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                       help=COUNTERMEASURE_ARGS_HELP)
    trace.add_argument("--out", default=None, metavar="FILE.json", help="also write the trace as JSON here")

    prof = sub.add_parser("profile", help="time one piece of each stage kind at a preset (generation per method, the "
                                          "surrogate and DDPM fits, pre-processing, a training epoch per "
                                          "countermeasure, evaluation) and project a grid's time")
    prof.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    prof.add_argument("--methods", default="all", help="comma list of registered methods (default: all)")
    prof.add_argument("--countermeasures", default="all", help="comma list of countermeasures (default: all)")
    prof.add_argument("--epochs", type=int, default=1, metavar="N",
                      help="epochs each countermeasure's victim trains, its steps sweeping the preset's schedule; the "
                           "projection takes their mean (default: 1)")
    prof.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    prof.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    prof.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    prof.add_argument("--use-cache", action="store_true",
                      help="read protected sets and fitted models from the cache (--cache-dir, else $UEBENCH_CACHE_DIR, "
                           "else the user cache), never writing it; cached sets report the generation time recorded "
                           "with them (default: everything made and timed in a temporary folder)")
    prof.add_argument("--cache-dir", default=None, help="with --use-cache: the cache to read")
    prof.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    prof.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    prof.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                       help=COUNTERMEASURE_ARGS_HELP)
    prof.add_argument("--out", default=None, metavar="FILE.json", help="also write the measurements as JSON here")

    cmp = sub.add_parser("compare", help="agreement figures with reference numbers, our cells beside theirs, and the "
                                         "protocol's facts checked")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN", help="run folders or results .jsonl files")
    cmp.add_argument("--reference", required=True, metavar="PATH.csv",
                     help="CSV of method,countermeasure,acc,source[,params] (e.g. references/cifar10-resnet18.csv)")
    cmp.add_argument("--out", default=None, metavar="FILE.md", help="also write the Markdown here")
    cmp.add_argument("--metric", default="final_acc", choices=["final_acc", "peak_acc"],
                     help="our accuracy after the last epoch (default) or at the best evaluation (early stopping)")
    cmp.add_argument("--resamples", type=int, default=1000, metavar="N",
                     help="bootstrap resamples of the seeds for the figures' intervals (default: 1000)")
    cmp.add_argument("--json", default=None, metavar="FILE.json",
                     help="also write the agreement figures and per-cell verdicts as JSON here")

    lev = sub.add_parser("levers", help="a calibration study: several boards (one per lever setting) with their "
                                        "agreement figures and cost per cell, as a table and a plot")
    lev.add_argument("run_dirs", nargs="+", metavar="RUN",
                     help="a run folder or rows file, or LABEL=PATH,PATH,... for one board's rows from several; one "
                          "board each; the first is the baseline the costs are relative to")
    lev.add_argument("--reference", required=True, metavar="PATH.csv", help="reference CSV, as for compare")
    lev.add_argument("--out", default=None, metavar="DIR", help="also write NAME.md, NAME.csv and NAME.png here")
    lev.add_argument("--name", default="levers", help="file stem (default: levers)")
    lev.add_argument("--resamples", type=int, default=200, metavar="N",
                     help="bootstrap resamples of the seeds per board (default: 200)")
    lev.add_argument("--base-hours", type=float, default=None, metavar="H",
                     help="CPU-hours of one seed of the full grid at the first run's settings: each run's is projected "
                          "from it by its cost, and the plot uses it")

    fr = sub.add_parser("frontier", help="methods at a ladder of strengths aimed at target PSNRs × countermeasures × "
                                         "seeds (resumable cells), then accuracy against PSNR as a table and a plot")
    fr.add_argument("--methods", default="all", help="comma list of methods with a strength knob, or 'all' (default; "
                                                     "see `list methods`)")
    fr.add_argument("--countermeasures", default=",".join(FRONTIER_COUNTERMEASURES),
                    help=f"comma list or 'all' (default: {','.join(FRONTIER_COUNTERMEASURES)})")
    fr.add_argument("--targets", type=_targets, default=None, metavar="DB,DB,...",
                    help="target PSNRs of the ladder (default: 36,32,28,24,20); each method's strength as given is run too")
    fr.add_argument("--pilot-images", type=int, default=256, metavar="N",
                    help="training images each method's calibration pilot protects (default: 256)")
    fr.add_argument("--seeds", type=_seeds, default=[0, 1], help="comma list of seeds (default: 0,1)")
    fr.add_argument("--preset", default="quick", type=_preset_spec, help="as for run (default: quick)")
    fr.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet-subset")
    fr.add_argument("--out", default=None, help="run folder (default: results/runs/frontier-DATASET-PRESET)")
    fr.add_argument("--data-root", default=None, help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    fr.add_argument("--cache-dir", default=None, help="artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)")
    fr.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    fr.add_argument("--jobs", type=int, default=1, help="parallel processes, as for run (default: 1)")
    fr.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="other parameters of the methods (the knob itself is the ladder's)")
    fr.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="parameters of the countermeasures")
    fr.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fr.add_argument("--recompute", action="store_true",
                    help="compute every cell here, taking no finished row from the published boards")
    fr.add_argument("--render-only", action="store_true",
                    help="only render OUT/frontier.{md,csv,png} from the rows already in OUT")

    site = sub.add_parser("site", help="render a static web site (HTML, CSS, a little JavaScript) from result rows")
    site.add_argument("run_dirs", nargs="+", metavar="PATH", help="run folders or results .jsonl files")
    site.add_argument("--out", required=True, metavar="DIR", help="output folder; open DIR/index.html")
    site.add_argument("--reference", default=None, metavar="PATH.csv", help="also a page comparing with this reference")

    gpu = sub.add_parser("check-gpu", help="measure the CUDA path: paper-preset throughput, memory, adversarial "
                                           "training's cost, the projected grid time (--dh: Semantic Deep Hiding)")
    gpu.add_argument("--epochs", type=int, default=3, metavar="N",
                     help="epochs of each timed paper-preset training (default: 3)")
    gpu.add_argument("--train-size", type=int, default=50_000, metavar="N",
                     help="training images (default: 50000); real CIFAR-10 when the data root holds it, else random "
                          "uint8 images of its shape (throughput does not depend on the pixels)")
    gpu.add_argument("--test-size", type=int, default=10_000, metavar="N", help="test images (default: 10000)")
    gpu.add_argument("--jobs", default="2,4", metavar="N,N,...",
                     help="numbers of cells to time at once on the GPU, as `run --jobs N` does ('' for none; "
                          "default: 2,4)")
    gpu.add_argument("--fused", default="1,4,8", metavar="K,K,...",
                     help="numbers of victims to time fused in one process (benchmark/fused.py), on CUDA with and without "
                          "CUDA graphs ('' for none; default: 1,4,8)")
    gpu.add_argument("--parity-npz", default=None, metavar="FILE.npz",
                     help="also train on these real CIFAR-10 images with and without CUDA graphs and compare "
                          "accuracies; written from the data root when missing")
    gpu.add_argument("--parity-epochs", type=int, default=15, metavar="N",
                     help="epochs of the parity trainings (default: 15)")
    gpu.add_argument("--methods", type=int, default=0, metavar="N",
                     help="grid rows for the projection (default: the registered methods)")
    gpu.add_argument("--countermeasures", type=int, default=0, metavar="N",
                     help="grid columns for the projection, none included (default: the registered ones)")
    gpu.add_argument("--model", default=None, metavar="NAME",
                     help="victim to time (default: the paper preset's, resnet18); e.g. tinycnn for a fast dry run")
    gpu.add_argument("--dh", action="store_true",
                     help="check Semantic Deep Hiding instead: dh and dh-8 end to end on synthetic images, then the "
                          "paper-size hiding network's step and generation times (its own report)")
    gpu.add_argument("--dh-steps", type=int, default=200, metavar="N",
                     help="with --dh: hiding-network training steps, end to end and timed at paper size (default: 200)")
    gpu.add_argument("--dh-images", type=int, default=50_000, metavar="N",
                     help="with --dh: synthetic images the paper-size network hides, timed (default: 50000)")
    gpu.add_argument("--device", default="cuda",
                     help="cuda (default) or cuda:N; cpu for a dry run whose numbers say nothing about a GPU")
    gpu.add_argument("--data-root", default=None, metavar="PATH",
                     help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    gpu.add_argument("--out", default=None, metavar="FILE.json", help="also write the measurements as JSON here")
    return parser


def _ray_options(args: argparse.Namespace) -> RayOptions | None:
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
    from .engine.ray_executor import RayOptions

    return RayOptions(args.ray_address, 1 if args.cpus_per_cell is None else args.cpus_per_cell,
                      0.0 if args.gpus_per_cell is None else args.gpus_per_cell)


def _reuse(args: argparse.Namespace) -> list[str | Path]:
    """Where finished rows may come from: none with --recompute, else --reuse, else the published boards."""

    if args.recompute:
        return []
    return args.reuse if args.reuse is not None else list(published_rows_files())


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from .engine.config import GridConfig
    from .engine.grid import run_grid

    ray_options = _ray_options(args)  # before any work: Ray missing or a flag that does not fit
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
                           _reuse(args), ray_options)
    except KeyboardInterrupt:
        print(
            f"\nInterrupted. Finished cells are kept in {out / 'results.jsonl'}.\n"
            f"Resume with: python -m benchmark {shlex.join(argv)}",
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


def _targets(text: str) -> list[float]:
    """An argparse type: comma-separated PSNRs in dB."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PSNRs in dB such as 36,32,28, got {text!r}") from None


def _frontier(args: argparse.Namespace) -> int:
    from .engine.config import GridConfig
    from .frontier import TARGETS, run_frontier, write_frontier

    out = Path(args.out or Path("results") / "runs" / f"frontier-{args.dataset}-{args.preset}")
    if args.render_only:
        for path in write_frontier([out], out):
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
    reuse = [] if args.recompute else list(published_rows_files())
    try:
        paths = run_frontier(config, names, countermeasures.expand(args.countermeasures), args.seeds, out,
                             args.targets or list(TARGETS), args.pilot_images, args.jobs,
                             not args.no_progress, reuse)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Finished cells are kept in {out / 'results.jsonl'}; run the same command to resume.",
              file=sys.stderr)
        return 130
    for path in paths:
        print(path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .data import load_splits, split_positions
    from .engine.config import GridConfig
    from .engine.recipe import protected_set
    from .imported import export

    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    images, gen = protected_set(config, args.method, args.seed)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    path = export(images, train.labels, split_positions(config.dataset, config.data_root, config.preset), args.out)
    stats = ", ".join(f"{k} {v:.4g}" for k, v in gen["perturbation"].items() if isinstance(v, (int, float)))
    print(f"{len(images)} images of {config.method(args.method).name} ({gen['budget']}; {stats}) written to {path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .data import load_splits
    from .engine.config import GridConfig
    from .engine.recipe import protected_set
    from .gallery import write_gallery
    from .identity import effective_settings, plugin_label

    if Path(args.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {args.out!r}")
    if args.per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {args.per_class}")
    if not args.method.startswith(PREFIX):
        methods.get(args.method)  # an unknown name lists the valid ones before any data is read
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    images, gen = protected_set(config, args.method, args.seed)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    path = write_gallery(args.out, train.images, images, train.labels, train.classes, args.per_class, set_key=gen["key"])
    source = "from the cache" if gen["cached"] else f"generated in {gen['generate_s']:.0f} s and cached"
    method = config.method(args.method)
    print(f"gallery of {plugin_label(method)} ({gen['budget']}; set {source}) written to {path}")
    settings = effective_settings(method, config.preset_obj)
    if settings:
        print(f"settings at {args.preset}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    return 0


def _bands(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .data import load_splits
    from .engine.config import GridConfig
    from .engine.recipe import make_context, protected_set
    from .identity import plugin_label
    from .spectrum import energy_share, haar_ll_share, probe_accuracy

    names, filters = methods.expand(args.methods), countermeasures.expand(args.countermeasures)
    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device="cpu", method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    built = [config.countermeasure(name) for name in filters]
    for cm in built:
        if "preprocess" not in cm.stages():
            valid = [n for n in countermeasures.names() if "preprocess" in countermeasures.get(n).stages()]
            raise ValueError(f"{cm.name!r} does not pre-process the images; valid: {', '.join(valid)}")
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    clean, labels = train.images[: args.images], train.labels[: args.images]
    ctx = make_context(config, args.seed, train.num_classes, lambda it=None, **kw: it)
    for cm in built:  # a purifier's model comes from the cache (or is fitted) here
        cm.prepare(ctx)
        cm.setup(ctx)
    cleaned = [cm.preprocess(clean, labels, ctx).float() for cm in built]  # once, not once per method
    table, probes = [], []
    for name in names:
        protected = protected_set(config, name, args.seed)[0][: args.images]
        label = plugin_label(config.method(name))
        delta = protected.float() - clean.float()
        left = [cm.preprocess(protected, labels, ctx).float() - after for cm, after in zip(built, cleaned)]
        table.append([label, haar_ll_share(delta), *(energy_share(x, delta) for x in left)])
        if args.probe:
            probes.append([label, *(probe_accuracy(x, labels) for x in [delta, *left])])
    print(tabulate(table, headers=["method", "coarse-band share", *(f"kept: {n}" for n in filters)], floatfmt=".3f"))
    if args.probe:
        print(f"\nlinear probe of the class from the perturbation left (chance {1 / train.num_classes:.2f}):")
        print(tabulate(probes, headers=["method", "none", *filters], floatfmt=".3f"))
    return 0


def _trace(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    from .engine.cells import Cell
    from .engine.config import GridConfig
    from .engine.local import task_threads, torch_threads
    from .trace import trace_cell

    config = GridConfig(
        dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
        method_args=parse_plugin_args(args.method_args, methods, "--method-args"),
        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures, "--countermeasure-args"),
    )
    methods.get(args.method)
    countermeasures.get(args.countermeasure)
    with torch_threads(task_threads(config.torch_device, 1)):  # as the grid's cell ran
        result = trace_cell(config, Cell(args.method, args.countermeasure, args.seed), args.epochs, args.eval_every,
                            victim_seed=args.victim_seed)
    keys = ["epoch", "test_acc", "protected_acc", "planted_rate", "baseline_rate"]
    print(f"{result['cell_id']} for {args.epochs} epochs ({result['seconds']:.0f} s); planted: perturbation "
          f"{'pixels copied' if result['planting'] == 'copy' else 'added'} from class y+1")
    print(tabulate([[p[k] for k in keys] for p in result["points"]], headers=keys, floatfmt=".3f"))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _profile(args: argparse.Namespace) -> int:
    import json

    from .engine.config import GridConfig
    from .engine.local import task_threads, torch_threads
    from .profile import profile_grid, render

    names, chosen = methods.expand(args.methods), countermeasures.expand(args.countermeasures)  # before any work
    if args.cache_dir is not None and not args.use_cache:
        raise ValueError("--cache-dir is only read with --use-cache; without it the profile makes and times "
                         "everything in a temporary folder")
    config = GridConfig(
        dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
        method_args=parse_plugin_args(args.method_args, methods, "--method-args"),
        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures, "--countermeasure-args"),
    )
    with torch_threads(task_threads(config.torch_device, 1)):  # as the grid's tasks run
        result = profile_grid(config, names, chosen, args.epochs, args.seed, args.use_cache,
                              lambda text: print(f"profile: {text}…", file=sys.stderr, flush=True))
    print(render(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    keep_freed_memory()  # this process computes at --jobs 1, in `trace`, `profile`, ...
    strict, Registry.strict = Registry.strict, args.strict_plugins
    try:
        if args.command == "run":
            return _run(args, argv)
        if args.command == "list":
            kind = LIST_ALIASES.get(args.kind, args.kind)
            kinds = [kind] if kind else list(LIST_KINDS)
            method_args = parse_plugin_args(args.method_args, methods, "--method-args")
            cost = None
            if kind == "models":  # measured only when asked for by name: it takes a minute on a CPU
                from .engine.config import GridConfig

                cost = (get_preset(args.preset), GridConfig(preset=args.preset, device=args.device).torch_device)
                print(f"measuring each model's cost at preset {args.preset}…", file=sys.stderr)
            for kind in kinds:
                print(f"== {kind} ==\n{list_plugins(kind, method_args, cost, args.names, get_preset(args.preset))}\n")
            broken = [e for registry in (methods, countermeasures, models) for e in registry.errors]
            if broken:
                print("== plugins that failed to load ==\n" + "\n".join(broken))
            return 0
        if args.command == "export":
            return _export(args)
        if args.command == "show":
            return _show(args)
        if args.command == "bands":
            return _bands(args)
        if args.command == "trace":
            return _trace(args)
        if args.command == "profile":
            return _profile(args)
        if args.command == "compare":
            from .compare import write_comparison

            text = write_comparison(args.run_dirs, args.reference, args.metric, args.resamples, args.json)
            if args.out:
                Path(args.out).write_text(text)
            print(text)
            return 0
        if args.command == "levers":
            from .calibration import lever_markdown, lever_plot, lever_table
            from .compare import read_reference

            table = lever_table(args.run_dirs, read_reference(args.reference), args.resamples, args.base_hours)
            text = lever_markdown(table)
            if args.out:
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{args.name}.md").write_text(text + "\n")
                table.to_csv(out / f"{args.name}.csv", index=False)
                lever_plot(table, out / f"{args.name}.png")
            print(text)
            return 0
        if args.command == "frontier":
            return _frontier(args)
        if args.command == "site":
            from .site import write_site

            written = write_site(args.run_dirs, args.out, args.reference)
            print(f"{len(written)} files written; open {written[0]}")
            return 0
        if args.command == "check-gpu":
            import json

            from .gpu_check import check_dh, check_gpu, parse_jobs, resolve_device

            device = resolve_device(args.device)
            if args.dh:
                report = check_dh(device, args.dh_steps, args.dh_images)
            else:
                report = check_gpu(device, args.epochs, args.train_size, args.test_size, parse_jobs(args.jobs, "--jobs"),
                                   args.data_root, args.parity_npz, args.parity_epochs, args.methods,
                                   args.countermeasures, args.model, parse_jobs(args.fused, "--fused"))
            if args.out:
                Path(args.out).write_text(json.dumps(report, indent=1))
            return 0
        from .leaderboard import write_leaderboard

        first = Path(args.run_dirs[0])
        out = args.out or (first.parent if first.is_file() else first)
        for path in write_leaderboard(args.run_dirs, out, args.name, args.with_rows):
            print(path)
        return 0
    except (KeyError, ValueError, FileNotFoundError, RunFolderBusy, PluginLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        Registry.strict = strict
