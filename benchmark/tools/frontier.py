"""`frontier`: each method at a ladder of strengths aimed at target PSNRs, the knob calibrated on a pilot, trained under
countermeasures as ordinary cells; the curves are rendered by `benchmark/report/frontier.py`."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..data import load_splits, split_digests
from ..identity import digest, plugin_identity
from ..metrics import perturbation_metrics
from ..plugins import Method, Strength
from ..registry import methods
from ..report.frontier import CALIBRATION, write_frontier

if TYPE_CHECKING:
    from ..engine.config import GridConfig

TARGETS = (36.0, 32.0, 28.0, 24.0, 20.0)  # dB, from near-invisible to plainly visible
PILOT_IMAGES = 256
MIN_GAP = 1.0  # dB: a ladder step predicted closer than this to another point is not run (it would repeat it)
ROUNDS = 3  # pilot measurements per ladder step; 0 predicts from the given strength's pilot alone
TOLERANCE = 0.75  # dB: a measured step this close to its target is kept


def knob(method: Method) -> Strength:
    """The method's strength knob, or a clear error naming the methods that have one."""
    if method.strength is None:
        having = [n for n in methods.names() if methods.get(n).strength is not None]
        raise ValueError(f"method {method.name!r} has no strength knob; methods with one: {', '.join(having)}")
    return method.strength


def predicted_psnr(strength: Strength, value: float, pilot_value: float, pilot_psnr: float) -> float:
    """The PSNR (dB) that `value` should give, from the pilot's (value, PSNR) pair (the inverse of `value_for`)."""
    if strength.scale == "psnr":
        return pilot_psnr + (value - pilot_value)
    return pilot_psnr - (20 if strength.scale == "amplitude" else 10) * math.log10(value / pilot_value)


def next_value(strength: Strength, before: tuple[float, float], last: tuple[float, float], target: float) -> float:
    """The knob value to measure next for `target` dB after `last` = (value, PSNR) missed it: the line through
    `before` and `last` (PSNR against log value, or against the value for a PSNR knob), where it slopes the way the
    knob works; else the scaling law from `last` alone."""
    x = (lambda v: v) if strength.scale == "psnr" else math.log10
    sign = 1 if strength.scale == "psnr" else -1  # the way PSNR moves as the knob grows
    if before[0] != last[0]:
        slope = (last[1] - before[1]) / (x(last[0]) - x(before[0]))
        if sign * slope > 0.1:  # dB per unit (or decade): flatter than this is noise, not a direction
            goal = x(last[0]) + (target - last[1]) / slope
            return strength.clip(goal if strength.scale == "psnr" else 10 ** goal)
    return strength.value_for(last[0], last[1], target)


def _pilot_indices(n: int, count: int) -> torch.Tensor:
    """`count` evenly spaced positions of n images (all of them when count ≥ n)."""
    return torch.linspace(0, n - 1, min(n, count)).round().long().unique()


def with_knob(config: GridConfig, values: dict[str, tuple[str, float]]) -> GridConfig:
    """`config` with each named method's knob (parameter, value) set among its other arguments."""
    args = {n: dict(a) for n, a in config.method_args.items()}
    for name, (param, value) in values.items():
        args[name] = args.get(name, {}) | {param: f"{value:g}"}
    return dataclasses.replace(config, method_args=args)


def calibrate(config: GridConfig, name: str, targets: list[float], pilot_images: int,
              progress: Callable[..., Any], rounds: int = ROUNDS) -> dict[str, Any]:
    """One pilot: the method at its given strength protects `pilot_images` evenly spaced training images (seed 0),
    its PSNR is measured there, and each target gets the knob value expected to reach it. With `rounds` > 0 each
    step is then measured on the same pilot and, while it misses its target by more than TOLERANCE dB, predicted
    again from its last two points (`next_value`: a knob the budget clips is not on the law's line), at most
    `rounds` measurements.
    A step whose value is already on the ladder (the knob's range clipped it) or whose PSNR (measured, else
    predicted) lies within MIN_GAP of another point's (the given strength's included) is dropped, with the reason."""
    from ..engine.recipe import (
        make_context,  # the engine's context: surrogates and held-out data as in a cell
    )

    method = config.method(name)
    strength = knob(method)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    idx = _pilot_indices(len(train.images), pilot_images)
    images, labels = train.images[idx], train.labels[idx]
    ctx = make_context(config, 0, train.num_classes, progress)
    default = float(getattr(method, strength.param))

    def measure(value: float) -> float | None:
        """The pilot's PSNR with the knob at `value`."""
        at = method if value == default else with_knob(config, {name: (strength.param, value)}).method(name)
        return perturbation_metrics(images, at(images, labels, ctx))["psnr"]

    psnr = measure(default)
    if psnr is None:
        raise ValueError(f"{name} changed none of the {len(idx)} pilot images: no PSNR to calibrate its knob from")
    ladder, seen, points = [], {default}, [psnr]
    for target in targets:
        chosen = strength.value_for(default, psnr, target)
        step = {"target": target, "value": chosen, "predicted_psnr": predicted_psnr(strength, chosen, default, psnr)}
        tried: dict[float, float | None] = {}
        before = (default, psnr)
        while rounds and chosen not in seen and chosen not in tried and len(tried) < rounds:
            tried[chosen] = measure(chosen)
            if tried[chosen] is None or abs(tried[chosen] - target) <= TOLERANCE:
                break
            before, chosen = (chosen, tried[chosen]), next_value(strength, before, (chosen, tried[chosen]), target)
        if tried:  # the measured value closest to its target
            step["value"] = min(tried, key=lambda v: math.inf if tried[v] is None else abs(tried[v] - target))
            step["measured_psnr"] = tried[step["value"]]
            step["measured"] = [[v, p] for v, p in tried.items()]
        reached = step.get("measured_psnr", step["predicted_psnr"])
        if step["value"] in seen:
            step["dropped"] = "its value is already on the ladder (the knob's range clips it)"
        elif reached is None:
            step["dropped"] = "at this value the method changed none of the pilot images"
        elif min(abs(reached - p) for p in points) < MIN_GAP:
            step["dropped"] = f"within {MIN_GAP:g} dB of another point of the ladder"
        else:
            seen.add(step["value"])
            points.append(reached)
        ladder.append(step)
    return {"param": strength.param, "default": default, "pilot_requested": pilot_images, "pilot_images": len(idx),
            "pilot_psnr": psnr, "rounds": rounds,
            "identity": digest(plugin_identity(method, config.preset_obj)), "ladder": ladder}


def load_or_calibrate(config: GridConfig, names: list[str], targets: list[float], pilot_images: int, out: Path,
                      say: Callable[[str], None] = lambda text: None, rounds: int = ROUNDS) -> dict[str, Any]:
    """OUT/frontier.json's ladders, calibrating each method whose ladder is missing or was made for other targets,
    pilot size, data or method settings (so a resumed frontier runs the same cells, whatever `rounds` its ladders
    were measured with); saved after each pilot."""
    path = out / CALIBRATION
    saved = json.loads(path.read_text()) if path.is_file() else {}
    data = split_digests(config.dataset, config.data_root, config.preset)["train"]
    same_run = saved.get("preset") == config.preset and saved.get("data") == data
    record = {"preset": config.preset, "data": data, "targets": list(targets),
              "methods": saved.get("methods", {}) if same_run else {}}
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        method = config.method(name)
        entry = record["methods"].get(name)
        same_targets = entry and [s["target"] for s in entry["ladder"]] == list(targets)
        if (same_targets and entry["identity"] == digest(plugin_identity(method, config.preset_obj))
                and entry.get("pilot_requested") == pilot_images):
            continue
        say(f"calibrating {name}'s {knob(method).param} on {pilot_images} images…")
        entry = record["methods"][name] = calibrate(config, name, list(targets), pilot_images,
                                                    lambda it=None, **kw: it, rounds)
        kept = [f"{s['target']:g} dB → {s['value']:g}" + (f" ({s['measured_psnr']:.1f} dB)" if "measured_psnr" in s
                                                          and s["measured_psnr"] is not None else "")
                for s in entry["ladder"] if "dropped" not in s]
        say(f"  {name} at {entry['default']:g}: {entry['pilot_psnr']:.1f} dB; ladder {', '.join(kept) or 'empty'}")
        path.write_text(json.dumps(record, indent=1) + "\n")
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def ladder_configs(config: GridConfig, calibration: dict[str, Any], names: list[str]) -> list[tuple[GridConfig, list[str]]]:
    """The grids a frontier runs: the given strengths first, then per target the configuration whose method
    arguments set each method's knob to its ladder value (methods whose step was dropped sit that one out)."""
    grids = [(config, list(names))]
    targets = calibration["targets"]
    for k in range(len(targets)):
        values = {name: (calibration["methods"][name]["param"], calibration["methods"][name]["ladder"][k]["value"])
                  for name in names if "dropped" not in calibration["methods"][name]["ladder"][k]}
        if values:
            grids.append((with_knob(config, values), list(values)))
    return grids


def run_frontier(config: GridConfig, names: list[str], countermeasure_names: list[str], seeds: list[int], out: str | os.PathLike,
                 targets: list[float] = TARGETS, pilot_images: int = PILOT_IMAGES, jobs: int = 1,
                 show_progress: bool = True, reuse: list[str | os.PathLike] = (), with_clean: bool = True,
                 rounds: int = ROUNDS) -> list[Path]:
    """Calibrate each method's ladder (or read it back), run every strength × countermeasure × seed as ordinary cells
    into OUT (resumable: finished cells are skipped), then render OUT/frontier.*."""
    from ..engine.grid import run_grid  # it imports the registries' plugins

    out = Path(out)
    if not names:
        raise ValueError("no methods selected: pass --methods with methods that have a strength knob")
    if not targets or any(not 5 <= t <= 80 for t in targets):
        raise ValueError(f"--targets must be PSNRs in [5, 80] dB, e.g. 36,32,28,24,20; got {list(targets)}")
    for name in names:  # before any work: each method exists and has a knob
        knob(config.method(name))
    calibration = load_or_calibrate(config, names, list(targets), pilot_images, out,
                                    (lambda text: print(text, file=sys.stderr, flush=True)) if show_progress else
                                    (lambda text: None), rounds)
    for k, (grid_config, chosen) in enumerate(ladder_configs(config, calibration, names)):
        grid = (["clean"] if k == 0 and with_clean else []) + chosen
        run_grid(grid, countermeasure_names, seeds, out, grid_config, jobs, show_progress, reuse=reuse)
    return write_frontier([out], out, countermeasure_names)
