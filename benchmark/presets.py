"""The three scales of one protocol: smoke (tests), quick (CPU leaderboard), paper (GPU)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Everything that fixes the data scale and the victim's training recipe."""

    name: str
    summary: str
    train_per_class: int | None  # None: the full training set
    test_per_class: int | None  # None: the full test set
    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    warmup_epochs: float
    eval_every: int  # evaluate on the clean test set every this many epochs (and after the last)
    subset_seed: int = 0  # the class-balanced subset is fixed per preset, independent of the cell seed

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="smoke",
            summary="tests and CI: 100 train / 100 test images per class, tiny CNN, seconds per cell",
            train_per_class=100,
            test_per_class=100,
            model="tinycnn",
            epochs=4,
            batch_size=64,
            lr=0.05,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=True,
            warmup_epochs=0.5,
            eval_every=1,
        ),
        Preset(
            name="quick",
            summary="CPU leaderboard: 500 train images per class, full test set, fast CNN, ~30 s per cell on 2 CPU cores",
            train_per_class=500,
            test_per_class=None,
            model="fastcnn",
            epochs=10,
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=True,
            warmup_epochs=1.0,
            eval_every=5,
        ),
        Preset(
            name="paper",
            summary="faithful reproduction on a GPU: full data, ResNet-18, 60 epochs",
            train_per_class=None,
            test_per_class=None,
            model="resnet18",
            epochs=60,
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=False,
            warmup_epochs=0.0,
            eval_every=1,
        ),
    ]
}


PLUMBING_ONLY = frozenset({"smoke"})  # presets whose numbers test the code, not the methods

# Named variants: a short name for a preset with fields changed. Its name stays the base preset's, so every method's
# and countermeasure's per-preset settings are the base's (the paper's generation, at full data), and its rows say
# what changed (`paper[model=airbench,...]`). `paper-fast`: the paper's data and protected sets, the victim built as
# the fastest CIFAR-10 trainers build theirs (issue 38), its recipe untried on a GPU until the first device run.
ALIASES = {
    "paper-fast": "paper[model=airbench,epochs=10,batch_size=512,lr=0.2,nesterov=true,warmup_epochs=1,eval_every=10]",
}


def plumbing_only(label: str) -> bool:
    """Whether a preset label (`smoke`, `smoke[epochs=2]`) names a preset whose numbers test the code only."""
    return label.split("[", 1)[0] in PLUMBING_ONLY


OVERRIDABLE = ("train_per_class", "test_per_class", "model", "epochs", "batch_size", "lr", "momentum", "weight_decay",
               "nesterov", "warmup_epochs", "eval_every")


POSITIVE = ("train_per_class", "test_per_class", "epochs", "batch_size", "lr", "eval_every")


def _value(preset: Preset, key: str, text: str) -> object:
    """`text` as the type of the preset field `key` (integers for the per-class counts, `none` for the full set)."""
    current = getattr(preset, key)
    if key in ("train_per_class", "test_per_class"):
        value: object = None if text.lower() in ("none", "all") else int(text)
    elif isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{key} takes true or false, got {text!r}")
        value = text.lower() == "true"
    else:
        value = type(current)(text)
    if key == "model":
        from .registry import models

        models.get(str(value))  # an unknown victim lists the registered ones
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
            value <= 0 if key in POSITIVE else value < 0):
        raise ValueError(f"{key} must be {'> 0' if key in POSITIVE else '>= 0'}, got {value}")
    return value


def get_preset(spec: str) -> Preset:
    """The preset `name`, or `name[field=value,...]`: that preset with fields replaced (its name, which picks the
    methods' per-preset schedules, stays; the changed definition gives it another preset_id). An unknown name or
    field lists the valid ones."""
    spec = ALIASES.get(spec.strip(), spec)
    match = re.fullmatch(r"([\w-]+)(?:\[(.*)\])?", spec.strip())
    name = match.group(1) if match else spec
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)} (optionally with "
                       f"[field=value,...] of {', '.join(OVERRIDABLE)}), or {', '.join(ALIASES)}")
    preset = PRESETS[name]
    if not match or not match.group(2):
        return preset
    changes: dict[str, object] = {}
    for item in match.group(2).split(","):
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in OVERRIDABLE or not text.strip():
            raise KeyError(f"preset {spec!r}: {item.strip()!r} is not field=value with a field of "
                           f"{', '.join(OVERRIDABLE)}")
        try:
            changes[key] = _value(preset, key, text.strip())
        except (ValueError, KeyError) as e:
            raise KeyError(f"preset {spec!r}: bad value for {key}: {e.args[0] if e.args else e}") from None
    shown = ",".join(f"{k}={v}" for k, v in changes.items())
    return dataclasses.replace(preset, summary=f"{preset.summary} [changed: {shown}]", **changes)


def preset_label(preset: Preset) -> str:
    """The name, followed by the fields that differ from the registered preset of that name: `quick[epochs=20]`."""
    base = PRESETS.get(preset.name)
    changed = [f"{k}={getattr(preset, k)}" for k in OVERRIDABLE
               if base is not None and getattr(preset, k) != getattr(base, k)]
    return f"{preset.name}[{','.join(changed)}]" if changed else preset.name
