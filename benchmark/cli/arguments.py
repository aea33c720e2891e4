"""The command line's shared pieces: help texts, argparse types, and the parsers of plugin arguments, method
lists and budgets."""
from __future__ import annotations

import argparse

from ..imported import PREFIX, parse_budget
from ..presets import get_preset
from ..registry import Registry, methods

PRESET_HELP = "smoke, quick (default) or paper; see `list presets`"

DATASET_HELP = "cifar10 (default), cifar100 or imagenet-subset"

DATA_ROOT_HELP = "dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)"

CACHE_HELP = "artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)"

METHOD_ARGS_HELP = "method parameters, e.g. em.eps=4 lsp.class_sep=5 (`list methods` shows them)"

COUNTERMEASURE_ARGS_HELP = "countermeasure parameters, e.g. gaussian_blur.sigma=0.1 (`list countermeasures` shows them)"
# The columns a frontier runs by default: the countermeasures that decide most verdicts (issue 34).

# The columns a frontier runs by default: the countermeasures that decide most verdicts (issue 34).
FRONTIER_COUNTERMEASURES = ("none", "grayscale", "jpeg10", "median_filter", "gaussian_blur", "ueraser", "adv_train",
                            "diffusion")


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


def seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects integers separated by commas, got {text!r}") from None


def ratios(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--poison-ratios expects fractions separated by commas, got {text!r}") from None


def targets(text: str) -> list[float]:
    """An argparse type: comma-separated PSNRs in dB."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PSNRs in dB such as 36,32,28, got {text!r}") from None


def preset_spec(text: str) -> str:
    """An argparse type: a preset name, optionally with [field=value,...], checked before any work."""
    try:
        get_preset(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None
    return text
