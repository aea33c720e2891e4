"""`list`: the registered plugins with their parameters (at a preset), the presets, and the models' measured cost."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..plugins import Plugin, build
from ..presets import PRESETS, Preset, get_preset
from ..registry import countermeasures, methods, models
from .arguments import parse_plugin_args

if TYPE_CHECKING:
    import torch

LIST_KINDS = ("methods", "countermeasures", "models", "presets")
LIST_ALIASES = {"defenses": "countermeasures"}  # the kind named as the old `run --defenses` flag


def plugin_params(cls: type[Plugin], preset: Preset | None = None, instance: Plugin | None = None) -> str:
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
                         f"{plugin_params(cls, preset, method)}")
    elif kind == "countermeasures":
        for name in countermeasures.names(pattern):
            cls = countermeasures.get(name)
            stages = ", ".join(cls.stages()) or "-"
            lines.append(
                f"{name:18s} {cls.family:15s} stages: {stages:24s} {cls.summary()}\n{'':18s} params: {plugin_params(cls, preset)}"
            )
    elif kind == "models":
        if cost is not None:
            from ..engine.cost import measure_model

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
    if kind in ("methods", "countermeasures") and pattern == "*":
        selections = (methods if kind == "methods" else countermeasures).selections()
        lines.append(f"selections (--{kind} NAME): " + "; ".join(f"{n} ({len(m)})" for n, m in selections.items()))
        lines += [f"  {n}: {', '.join(m) or '(none yet)'}" for n, m in selections.items() if n != "every"]
        lines.append(f"  every: {' + '.join(n for n in selections if n != 'every')}")
    return "\n".join(lines)


def list_command(args: argparse.Namespace) -> int:
    """`list`: each kind asked for, then the plugins that failed to load."""
    kind = LIST_ALIASES.get(args.kind, args.kind)
    kinds = [kind] if kind else list(LIST_KINDS)
    method_args = parse_plugin_args(args.method_args, methods, "--method-args")
    cost = None
    if kind == "models":  # measured only when asked for by name: it takes a minute on a CPU
        from ..engine.config import GridConfig

        cost = (get_preset(args.preset), GridConfig(preset=args.preset, device=args.device).torch_device)
        print(f"measuring each model's cost at preset {args.preset}…", file=sys.stderr)
    for kind in kinds:
        print(f"== {kind} ==\n{list_plugins(kind, method_args, cost, args.names, get_preset(args.preset))}\n")
    broken = [e for registry in (methods, countermeasures, models) for e in registry.errors]
    if broken:
        print("== plugins that failed to load ==\n" + "\n".join(broken))
    return 0
